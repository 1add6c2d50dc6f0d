"""One module per pane; PANES is their order on the tab bar and number keys."""

from .alerts import AlertsPane
from .ash import AshPane
from .backups import BackupsPane
from .locks import LocksPane
from .overview import OverviewPane
from .queries import QueriesPane
from .sessions import SessionsPane

PANES = (OverviewPane, SessionsPane, QueriesPane, LocksPane, AshPane, AlertsPane, BackupsPane)
