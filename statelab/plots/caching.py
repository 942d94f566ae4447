"""Row 07, caching: what a shared cache served under each set-up, stateful vs stateless."""

from __future__ import annotations

from typing import Any

DESIGNS = ("stateful", "stateless")
#: (measurement, label, hatch): the two bars of a design; hatches tell them apart without colour.
BARS = (("catalog hit ratio", "catalog", ""), ("personal hit ratio", "/me, /cart", "///"))
#: Dots mark the stateless bars, so the design does not rest on colour either.
DESIGN_HATCH = {"stateful": "", "stateless": ".."}


def plot(ev: Any, ax: Any = None) -> Any:
    """Hit ratios (bars) and leaks (written above them) per set-up, from ``caching.run()``'s evidence.

    Colour and dots (stateless) say the design; slanted hatching says per-user answers (/me, /cart);
    the number of leaks is written out, never shown by colour alone.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(8.5, 3.4))
    else:
        fig = ax.figure
    table = ev.extra["table"]
    setups = list(table[DESIGNS[0]])
    width = 0.2
    for i, design in enumerate(DESIGNS):
        for j, (key, label, hatch) in enumerate(BARS):
            xs = [k + (2 * i + j - 1.5) * width for k in range(len(setups))]
            ys = [table[design][s][key] for s in setups]
            ax.bar(xs, ys, width, hatch=hatch + DESIGN_HATCH[design], edgecolor="black",
                   color="tab:blue" if design == "stateful" else "tab:orange", label=f"{design}: {label}")
        for k, s in enumerate(setups):
            leaks = table[design][s]["leaks"]
            ax.text(k + (2 * i - 0.5) * width, 1.02, f"{leaks} leaks" if leaks else "no leak", ha="center",
                    fontsize=7, fontweight="bold" if leaks else "normal")
    ax.set_xticks(range(len(setups)), setups)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("hit ratio")
    ax.set_xlabel("set-up (cache behaviour, headers on per-user answers)")
    ax.set_title("What a shared cache serves, stateful vs stateless")
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.28), frameon=False)
    fig.tight_layout()
    return fig
