"""The learning layer: predictions, reveals, quizzes, answers, objectives and key points (issue 10).

Widgets are driven headless the way a click drives them: by setting a radio group's value.
The notebook checks read the committed notebooks and assert that they found all fifteen (00-14).
"""

from __future__ import annotations

import ast
import html
import json
import re
from pathlib import Path

import pytest

import statelab as sl
from statelab import kernel
from statelab.experiments import progress
from statelab.ui import prediction as predict_module
from statelab.ui.quiz import Question
from statelab.ui.quizzes import QUIZZES

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ALL = sorted(NOTEBOOKS.glob("[01][0-9]_*.ipynb"))
#: Notebooks that ask for a prediction before their experiment (00's crash, every row 03-11, and 13's workers).
PREDICTING = ("00", "03", "04", "05", "06", "07", "08", "09", "10", "11", "13", "14")
#: Notebooks that draw a diagram (Mermaid) of the request path or of where the state lives.
DIAGRAMS = ("03", "04", "06", "07", "08", "09", "10", "13", "14")


@pytest.fixture(autouse=True)
def fresh_predictions(tmp_path, monkeypatch):
    """Each test starts with no prediction, and any saved one goes to a temporary journal."""
    monkeypatch.setenv("STATELAB_EVIDENCE_DIR", str(tmp_path / "journal"))
    predict_module.forget()
    yield
    predict_module.forget()


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def test_found_every_notebook():
    assert [p.name[:2] for p in ALL] == [f"{n:02d}" for n in range(15)]


# --- predict and reveal ----------------------------------------------------------------------------

def test_an_unanswered_prediction_never_blocks_and_says_so():
    sl.ui.predict("Which design loses carts?", ["session + memory", "token + cart in db"], key="t1")
    shown = sl.ui.reveal("t1", ["session + memory"], why="memory dies with its process")
    assert "You did not predict" in shown.value and "session + memory" in shown.value
    assert "memory dies with its process" in shown.value
    assert sl.ui.predictions()["t1"].predicted is None


def test_clicking_a_prediction_records_it_and_the_reveal_compares():
    asked = sl.ui.predict("Which design loses carts?", ["session + memory", "token + cart in db"], key="t2")
    assert "not answered yet" in asked.status.value
    asked.choice.value = "token + cart in db"                        # the learner clicks
    assert sl.ui.predictions()["t2"].predicted == "token + cart in db"
    assert "you predicted <b>token + cart in db</b>" in asked.status.value.lower()
    shown = sl.ui.reveal("t2", "session + memory", why="why")
    assert "You predicted <b>token + cart in db</b>; you measured <b>session + memory</b>" in shown.value
    assert predict_module.MISS in shown.value
    asked.choice.value = "session + memory"                          # a later change updates the reveal
    assert predict_module.MATCH in shown.value


def test_answering_after_the_reveal_updates_it():
    asked = sl.ui.predict("Q?", ["a", "b"], key="t3")
    shown = sl.ui.reveal("t3", ["a"], why="w")
    assert predict_module.NONE in shown.value
    asked.choice.value = "a"
    assert predict_module.MATCH in shown.value and "You predicted <b>a</b>" in shown.value


def test_reveal_without_a_prediction_is_a_clear_error():
    with pytest.raises(KeyError, match="run the prediction cell"):
        sl.ui.reveal("never-asked", "a", why="w")


def test_a_prediction_needs_choices():
    with pytest.raises(ValueError):
        sl.ui.predict("Q?", ["only one"], key="t4")


def test_predictions_are_saved_for_notebook_12_and_shown_beside_measurements(monkeypatch):
    monkeypatch.setattr(kernel, "in_a_notebook", lambda: True)     # as in a learner's kernel
    asked = sl.ui.predict("Whose carts go?", ["only memory", "every design"], key="fault_tolerance")
    asked.choice.value = "every design"
    sl.ui.reveal("fault_tolerance", ["only memory"], why="w")
    predict_module._records.clear()                                  # notebook 12 runs in another kernel
    saved = predict_module.saved()["fault_tolerance"]
    assert saved.predicted == "every design" and saved.measured == ["only memory"] and saved.matched is False
    board = sl.ui.Scoreboard({})
    table = board.prediction_table.value
    assert "Whose carts go?" in table and "every design" in table and "only memory" in table
    assert predict_module.MISS in table and "Fault Tolerance" in table


def test_the_scoreboard_names_notebook_13_for_its_prediction():
    sl.ui.predict("Workers with their own memory: what share finds the login?", ["all", "about half"],
                  key="into_production")
    sl.ui.reveal("into_production", "about half", why="w")
    table = sl.ui.Scoreboard({}).prediction_table.value
    assert "Into production" in table and "13_into_production.ipynb" in table and "Start here" not in table


def test_the_scoreboard_says_when_there_is_no_prediction():
    assert "none yet" in sl.ui.Scoreboard({}).prediction_table.value


# --- quizzes ---------------------------------------------------------------------------------------

def test_every_notebook_has_a_quiz_of_three_to_five_questions():
    assert sorted(QUIZZES) == [f"{n:02d}" for n in range(15)]
    for number, questions in QUIZZES.items():
        assert 3 <= len(questions) <= 5, number
        assert all(isinstance(q, Question) for q in questions)


def test_every_wrong_option_has_feedback_that_names_the_misconception():
    for number, questions in QUIZZES.items():
        for q in questions:
            assert len(q.options) >= 3, (number, q.prompt)
            for option in q.options:
                assert option.feedback.strip(), (number, q.prompt, option.text)
                if not option.correct:
                    assert option.feedback.startswith("Misconception"), (number, option.text)


def test_clicking_an_option_changes_the_feedback():
    quiz = sl.ui.quiz("04")
    item = quiz.items[0]
    assert "Choose an answer" in item.feedback.value
    wrong = next(o for o in item.question.options if not o.correct)
    item.choice.value = wrong.text                                   # a click on a wrong option
    assert "Not quite" in item.feedback.value and html.escape(wrong.feedback) in item.feedback.value
    total = len(quiz.items)
    assert f"0 of {total} right, 1 answered" in quiz.score.value
    item.choice.value = item.question.answer.text                    # then on the right one
    assert "Right." in item.feedback.value and f"1 of {total} right, 1 answered" in quiz.score.value


def test_feedback_never_says_right_twice():
    """Issue 20: "\u2713 Right. Right: ..." on a right answer; the mark already says it."""
    for number in QUIZZES:
        quiz = sl.ui.quiz(number)
        for item in quiz.items:
            item.choice.value = item.question.answer.text
            text = re.sub(r"<[^>]+>", " ", html.unescape(item.feedback.value))
            assert not re.search(r"Right\.\s+Right\b", text), (number, text[:120])
            answers = re.sub(r"<[^>]+>", " ", html.unescape(item.answers.value))
            assert not re.search(r"Right\.\s+\S+:\s+Right\b", answers), (number, answers[:200])


def test_every_question_carries_its_answers_in_plain_html_for_a_page_without_kernel():
    quiz = sl.ui.quiz("04")
    for item in quiz.items:
        value = item.answers.value
        assert "<details" in value and "<summary" in value
        for option in item.question.options:  # every option's feedback is in the saved HTML, marked in words
            assert html.escape(option.text) in value
        assert value.count("\u2713 Right.") == 1 and value.count("\u2717 Not quite.") == len(item.question.options) - 1


def test_a_quiz_of_ones_own_and_bad_input():
    with pytest.raises(KeyError, match="no quiz"):
        sl.ui.quiz("99")
    with pytest.raises(ValueError, match="exactly one"):
        sl.ui.Question("Q?", (sl.ui.Option("a", "x", True), sl.ui.Option("b", "y", True)))
    mine = sl.ui.quiz([sl.ui.Question("Q?", (sl.ui.Option("a", "Right", True), sl.ui.Option("b", "Misc")))])
    assert "Misc" in mine.answer(1, "b")


def test_every_control_is_labelled():
    for widget in (sl.ui.quiz("00").items[0].choice, sl.ui.predict("Q?", ["a", "b"], key="t5").choice):
        assert widget.description.strip()


# --- the notebooks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name[:2])
def test_objectives_quiz_and_key_points(path):
    texts = [source(c) for c in cells(path)]
    objectives = [t for t in texts if t.startswith("**Learning objectives.**")]
    assert len(objectives) == 1 and len(re.findall(r"^1\. ", objectives[0], flags=re.M)) == 3
    assert texts.index(objectives[0]) == 1                           # right under the title
    key_points = [t for t in texts if t.startswith("## Key points")]
    assert len(key_points) == 1 and len(re.findall(r"^- ", key_points[0], flags=re.M)) == 3
    assert f'sl.ui.quiz("{path.name[:2]}")' in texts


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name[:2])
def test_every_exercise_has_a_hidden_answer(path):
    texts = [source(c) for c in cells(path)]
    exercises = [i for i, t in enumerate(texts) if t.startswith("## Exercises")]
    assert len(exercises) == 1
    asked = re.findall(r"^- \*\*(?:Try|Think):\*\*", texts[exercises[0]], flags=re.M)
    answers = texts[exercises[0] + 1]
    assert asked and answers.startswith("### Answers")
    assert answers.count("<details><summary>Answer") == len(asked) == answers.count("</details>")


@pytest.mark.parametrize("number", PREDICTING)
def test_a_prediction_before_the_experiment_and_a_computed_reveal_after(number):
    path = next(p for p in ALL if p.name.startswith(number))
    code = [source(c) for c in cells(path) if c["cell_type"] == "code"]
    asks = [i for i, t in enumerate(code) if "sl.ui.predict(" in t]
    tells = [i for i, t in enumerate(code) if "sl.ui.reveal(" in t]
    assert len(asks) == 1 and len(tells) == 1 and asks[0] < tells[0]
    ask = next(n for n in ast.walk(ast.parse(code[asks[0]])) if isinstance(n, ast.Call))
    tell = next(n for n in ast.walk(ast.parse(code[tells[0]]))
                if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "reveal")
    key = next(k.value.value for k in ask.keywords if k.arg == "key")
    assert tell.args[0].value == key
    assert not isinstance(tell.args[1], ast.Constant), "the measured choice must be computed, not typed"
    experiment = [i for i, t in enumerate(code) if re.search(r"\.run\(|server\.kill\(\)|\.measure_\w+\(", t)]
    assert asks[0] < experiment[0] < tells[0]


@pytest.mark.parametrize("number", DIAGRAMS)
def test_row_notebooks_draw_a_described_diagram(number):
    path = next(p for p in ALL if p.name.startswith(number))
    diagrams = [source(c) for c in cells(path) if "```mermaid" in source(c)]
    assert diagrams and all("accTitle:" in d and "accDescr:" in d for d in diagrams)


# --- the progress bar ------------------------------------------------------------------------------

def test_progress_is_silent_outside_a_notebook(capsys):
    assert list(progress(range(3), "measuring")) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_progress_is_tqdm_in_a_notebook(monkeypatch, capsys):
    monkeypatch.setattr(kernel, "in_a_notebook", lambda: True)
    assert list(progress(range(3), "measuring")) == [0, 1, 2]
    assert "measuring" in capsys.readouterr().err                   # tqdm's text bar outside a kernel


# --- charts ----------------------------------------------------------------------------------------

def test_a_figure_gets_alt_text_from_what_it_shows():
    import matplotlib.pyplot as plt

    from statelab.plots import describe, figure_html

    fig, ax = plt.subplots()
    ax.bar([0, 1], [1, 2], label="kept")
    ax.set_title("Carts after a crash")
    ax.set_xlabel("design")
    ax.legend()
    ax.text(0, 1, "3/3 kept")
    text = describe(fig)
    assert "Carts after a crash" in text and "design" in text and "kept" in text and "3/3 kept" in text
    assert 'alt="' in figure_html(fig) and "data:image/png;base64," in figure_html(fig)
    plt.close(fig)


# --- answers that state an outcome: the exercise, run ------------------------------------------------

def test_answers_that_state_an_outcome_are_what_the_exercise_shows():
    import time

    from statelab.experiments import development_focus, fault_tolerance, resource_usage
    from statelab.shop.plugins import IdempotencyKeys, InFlight, idempotent_writes, slow_writes
    from statelab.topology.cache import SharedCache

    # 06, answer 1: RS256 fits the fewest cart lines in a cookie, HS256 the most.
    fits = {alg: resource_usage.lines_to_outgrow(sl.Keyring(alg)) for alg in ("HS256", "ES256", "RS256")}
    assert fits["RS256"] < fits["ES256"] < fits["HS256"], fits
    # 06, answer 2: sent in Authorization, even an RS256 token for a full cart stays under gunicorn's header limit.
    gunicorn = resource_usage.gunicorn_field_limit()
    assert resource_usage.lines_to_outgrow(sl.Keyring("RS256"), gunicorn, header=True) is None
    servers = []
    try:
        # 08, answer 3: a token lives 15 minutes by default (the grace period the answer names).
        shop = sl.serve("stateless")
        servers.append(shop)
        alice = sl.Client(shop.url)
        alice.login("alice")
        claims = alice.inspect_token().claims
        assert claims["exp"] - claims["iat"] == 900
        # 06, answer 2: once idle sessions expire, counting them says 0.
        brief = sl.serve("stateful", session_ttl=0.3)
        servers.append(brief)
        sl.Client(brief.url).login("bob")
        time.sleep(0.5)
        assert brief.sessions == 0
        # 07, answer 3: private per-user answers are never stored by a correct shared cache.
        cache = SharedCache(shop)
        servers.append(cache)
        a, b = sl.Client(cache.url), sl.Client(cache.url)
        a.login("a"), b.login("b")
        assert a.me().headers.get("X-Cache") == "BYPASS" and b.me().ok and not cache.entries
        # 11, answer 2: with the guard back on, a forged form is refused by Origin (403), and without it by type (415).
        unguarded = sl.serve("stateful", csrf_guard=False)
        servers.append(unguarded)
        victim = sl.Client(unguarded.url)
        victim.login("alice")
        unguarded.csrf_guard = True
        assert development_focus.forged_form_post(victim, shop.url).status == 403
        body = '{"item": "x", "qty": 1, "pad": "="}'
        assert victim.post("/cart", data=body, headers={"Content-Type": "text/plain"}).status == 415
        # 01, answer 2: an odd user name gets a readable 400.
        assert sl.Client(unguarded.url).login("<script>").status == 400
        # 04, answer 3: the same write with the same key again is replayed, not acted on twice; another body is a 422.
        watch = InFlight()
        demo = sl.Cluster(2, "stateless", cart="db",
                          plugins=[slow_writes(0.3), watch, idempotent_writes(IdempotencyKeys())])
        servers.append(demo)
        erin = sl.Client(demo.url)
        erin.login("erin")
        fault_tolerance.write_through_crash(demo, erin, watch, item="ink", key="erin-ink-1")
        again = fault_tolerance.write_through_crash(demo, erin, watch, item="ink", key="erin-ink-1")
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert erin.cart().body["cart"] == [{"item": "ink", "qty": 1}]
        other = fault_tolerance.write_through_crash(demo, erin, watch, item="pen", key="erin-ink-1")
        assert other.status == 422 and erin.cart().body["cart"] == [{"item": "ink", "qty": 1}]
    finally:
        for s in servers:
            s.stop()


# --- one name for the source text (issue 20) -------------------------------------------------------------------
def test_start_here_introduces_the_source_text_its_nine_rows_and_eight_benefit_codes():
    nb = json.loads((ROOT / "notebooks" / "00_start_here.ipynb").read_text())
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert "**The source text** is" in markdown and "4a-4d" in markdown and "5a-5d" in markdown
    assert "sl.table.rows_markdown()" in code and "sl.table.benefits_markdown()" in code
    rows, benefits = sl.table.rows_markdown(), sl.table.benefits_markdown()
    assert all(f'"{r.stateful}"' in rows and f'"{r.stateless}"' in rows for r in sl.table.ROWS)
    assert all(f"**{code}**" in benefits for code in ("4a", "4b", "4c", "4d", "5a", "5b", "5c", "5d"))


UNEXPLAINED = re.compile(r"\bthe seed\b", re.I)
#: Notebooks another branch (rows-b) was still changing when these checks came in: fixed there or right after it
#: merges; remove a name once its notebook passes.
NOT_YET_RENAMED: set[str] = set()


def test_no_learner_facing_text_says_the_seed():
    """Issue 20: "the seed" was never explained; the course calls it "the source text", introduced in 00."""
    found = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        if path.name in NOT_YET_RENAMED:
            continue
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            if UNEXPLAINED.search("".join(cell["source"])):
                found.append(f"{path.name} cell {i}")
    for path in [*sorted((ROOT / "statelab" / "ui").glob("*.py")), ROOT / "statelab" / "ui" / "quizzes.json",
                 *sorted((ROOT / "statelab" / "experiments").glob("*.py"))]:
        if UNEXPLAINED.search(path.read_text()):
            found.append(path.relative_to(ROOT).as_posix())
    assert found == [], found


def test_every_you_predicted_you_measured_cell_is_one_line_and_the_mapping_lives_in_the_library():
    """Issue 20: the cells mapping a measurement to a prediction's choice were 4-12 lines of plumbing."""
    long = []
    rows = {r.notebook for r in sl.table.ROWS} - NOT_YET_RENAMED   # the row notebooks, each with its experiment
    for path in ALL:
        if path.name not in rows:
            continue
        for i, cell in enumerate(cells(path)):
            source = "".join(cell["source"]).strip()
            if cell["cell_type"] == "code" and "sl.ui.reveal(" in source:
                if len(source.splitlines()) > 1 or "answer(ev)" not in source and "ev.answer()" not in source:
                    long.append(f"{path.name} cell {i}")
    assert long == [], long
    for row in ("scalability", "fault_tolerance", "performance", "resource_usage", "caching", "deployment",
                "transaction_integrity",
                "load_balancing", "development_focus"):
        module = __import__(f"statelab.experiments.{row}", fromlist=["answer"])
        assert callable(module.answer) and module.WHY.strip(), row


def test_answer_headings_keep_the_exercises_brackets_and_quotes():
    """Issue 20: 00's fourth answer heading read ``browsers"token + cart in token".token`` (brackets lost)."""
    bad = []
    for path in ALL:
        if path.name in NOT_YET_RENAMED:
            continue
        for cell in cells(path):
            for summary in re.findall(r"<summary>(.*?)</summary>", "".join(cell["source"])):
                if re.search(r'[A-Za-z0-9]"[A-Za-z]|"\.[a-z]', summary) or summary.count("[") != summary.count("]"):
                    bad.append(f"{path.name}: {summary}")
    assert bad == [], bad


def test_production_answer_names_the_prediction_choice_from_the_shares():
    from collections import Counter

    from statelab.production import experiment as ex

    def shares(found_per_worker: int) -> dict:
        return {n: ex.Share(Counter({200: found_per_worker, 401: 10 - found_per_worker}) if where == "per-worker"
                            else Counter({200: 10})) for n, (where, _mode) in ex.DESIGNS.items()}

    assert ex.answer(shares(5)) == "about 1 in 2 for sessions, tokens and signed cookies alike"
    assert ex.answer(shares(10)).startswith("all of them") and ex.answer(shares(0)) == "none of them"
    assert ex.WHY.strip()
