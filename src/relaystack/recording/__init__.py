"""Record/replay of upstream HTTP traffic, in llama-stack's recording format.

The composition root calls ``wrap_upstream(inner, settings)`` once; providers never know.
See recorder.py for the modes, identity.py for matching, redact.py for secrets and
faults.py for the fault grammar.
"""

from relaystack.recording.faults import FAULT_GRAMMAR, FaultSpec
from relaystack.recording.recorder import RecordingUpstream, ReplayingUpstream, wrap_upstream
from relaystack.recording.settings import RecordingSettings, RecordMode

__all__ = [
    "FAULT_GRAMMAR",
    "FaultSpec",
    "RecordMode",
    "RecordingSettings",
    "RecordingUpstream",
    "ReplayingUpstream",
    "wrap_upstream",
]
