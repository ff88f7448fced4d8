"""llama-stack's Together integration plan (49d4a5cc8), reimplemented against a replaying relaystack."""
