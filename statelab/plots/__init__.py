"""Every chart of the collection, one module per row: ``statelab.plots.<row>.plot(ev, ax=None)``.

Kept apart from the experiments so that measuring needs no matplotlib, and so that every chart
follows the same rules: meaning never by colour alone (labels, markers or hatches as well), and
axes that say their units.
"""
