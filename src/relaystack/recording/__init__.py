"""Record/replay of upstream HTTP traffic, in llama-stack's recording format.

The composition root opens the process's ``recording_store(settings)`` once and calls
``wrap_upstream(inner, settings, store)`` for each remote provider; providers never know.
See recorder.py for the modes, identity.py for matching, redact.py for secrets and
faults.py for the fault grammar.
"""

from relaystack.recording.faults import FAULT_GRAMMAR, FaultSpec
from relaystack.recording.recorder import RecordingUpstream, ReplayingUpstream, recording_store, wrap_upstream
from relaystack.recording.settings import RecordingSettings, RecordMode

__all__ = [
    "FAULT_GRAMMAR",
    "FaultSpec",
    "RecordMode",
    "RecordingSettings",
    "RecordingUpstream",
    "ReplayingUpstream",
    "recording_store",
    "wrap_upstream",
]
