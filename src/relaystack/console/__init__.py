"""The console: a web page served by relaystack itself at ``/console`` to try models (playground),
watch the gateway (status, traffic) and manage it (keys).

Server-rendered HTML (``page.html``) with vanilla JavaScript modules and CSS under ``static/``,
shipped inside the package: no CDN, no build step, no network at run time. The page reads
relaystack's own API with the caller's key; ``stats.py`` adds the one thing the API lacks, the
recent request rate, latency and errors of this process.
"""

from relaystack.console.routes import CONSOLE_PATH, ConsoleFeatures, ConsoleRoutes
from relaystack.console.stats import TrafficStats

__all__ = ["CONSOLE_PATH", "ConsoleFeatures", "ConsoleRoutes", "TrafficStats"]
