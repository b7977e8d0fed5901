"""The proxy-controller API, version 1 (docs/proxy-api.md): JSON lines on a Unix socket.

* ``protocol`` -- wire constants, :class:`Flow`, argument checks, :class:`ApiError`.
* ``service``  -- :class:`SpliceService`, what the server asks of the controller; :class:`Deltas`.
* ``server``   -- :class:`ProxyApiServer`, the controller's side.
* ``client``   -- :class:`ProxyApiClient`, the proxy's side.
"""

from .client import ConnectionLost, Event, ProxyApiClient
from .protocol import API_VERSION, ERROR_CODES, EVENTS, MAX_LINE, SUPPORTED_VERSIONS, ApiError, Flow
from .server import DEFAULT_SOCKET, ProxyApiServer, SocketInUseError
from .service import Deltas, FlowInfo, SpliceService

__all__ = [
    "API_VERSION",
    "DEFAULT_SOCKET",
    "ERROR_CODES",
    "EVENTS",
    "MAX_LINE",
    "SUPPORTED_VERSIONS",
    "ApiError",
    "ConnectionLost",
    "Deltas",
    "Event",
    "Flow",
    "FlowInfo",
    "ProxyApiClient",
    "ProxyApiServer",
    "SocketInUseError",
    "SpliceService",
]
