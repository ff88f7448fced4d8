from relaystack.upstream.base import Timeouts, Upstream, UpstreamRequest, UpstreamResponse

__all__ = ["Timeouts", "Upstream", "UpstreamRequest", "UpstreamResponse"]
