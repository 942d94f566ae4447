"""ipywidgets views over statelab's public API: ``sl.ui.dashboard(target)`` and its parts.

Every widget is a thin view: a button calls the same method a notebook cell would
(``client.login("alice")``, ``cluster.kill(1)``), then the view re-renders from the objects'
state by setting widget values, so it works in JupyterLab and headless (``button.click()``).
"""

from .client_panel import ClientPanel
from .dashboard import Dashboard, dashboard
from .history import History
from .inspector import Inspector, where_state_lives
from .network_card import NetworkCard
from .prediction import Prediction, Reveal, predict, predictions, reveal
from .quiz import Option, Question, Quiz, quiz
from .scoreboard import RowResult, Scoreboard, scoreboard
from .server_card import BalancerCard, ServerCard
from .trace import TraceView, trace

__all__ = ["BalancerCard", "ClientPanel", "Dashboard", "History", "Inspector", "NetworkCard", "Option", "Prediction",
           "Question", "Quiz", "Reveal", "RowResult", "Scoreboard", "ServerCard", "dashboard", "predict", "predictions",
           "quiz", "reveal", "scoreboard", "trace", "TraceView", "where_state_lives"]
