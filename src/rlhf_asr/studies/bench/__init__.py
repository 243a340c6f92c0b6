"""`rlhf-asr bench`: memory and step time of SFT and of the three preference engines.

The claim of this project (one encoder pass, packed decoder, chunked label log-probs) is a
memory and speed claim, so it is measured, not asserted: each mode runs in a fresh process
(`run.py`) so one mode's allocator state cannot leak into another's numbers, and `compare.py`
puts the results side by side; `kbest.py` does the same for K candidates per clip (`--candidates`).
"""
