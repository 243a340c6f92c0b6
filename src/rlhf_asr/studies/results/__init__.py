"""`rlhf-asr results`: the studies behind docs/results.md (WER, hallucination, silence), each with its report.

Every study writes its raw numbers to a JSON file and its report is rendered from that file alone
(`report.py`), so a committed report can be checked and regenerated without training.
"""
