"""An embedded database engine whose monitoring data all comes from its own real activity."""

from .clock import Clock, ManualClock, SystemClock
from .config import EngineConfig
from .engine import VERSION, Engine
from .errors import EngineError
from .sessions import Session, SessionInfo, SessionState

__all__ = ["Clock", "Engine", "EngineConfig", "EngineError", "ManualClock", "Session", "SessionInfo",
           "SessionState", "SystemClock", "VERSION"]
