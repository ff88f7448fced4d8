"""The embedded default models: SmolLM2-135M-Instruct (llama.cpp) and all-MiniLM-L6-v2 (numpy).

Nothing heavy is imported here; the runtimes load on the models' worker threads.
"""

from __future__ import annotations

import os

# ggml's OpenMP threads spin-wait between graph runs by default; on a busy 2-core box that
# made a 2-thread prompt pass ~9x slower (2.6 s instead of 0.29 s to the first token, see
# bench/local_models.py --threads-batch 1,2); passive waiting brings it back to par. libgomp reads this once, when
# llama_cpp is first imported, so it is set as early as possible; an explicit value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
