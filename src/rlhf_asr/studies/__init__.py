"""The studies: the demo, the results studies and the benchmarks, beside the library and never imported by it.

A study uses the library as a user would and measures it: `rlhf-asr demo`, `rlhf-asr results` and
`rlhf-asr bench` run them. The modules here are shared by every study (the synthetic corpus, its
non-speech splits, the studies' options, their pipeline stages); each study lives in its own
folder (`demo/`, `results/`, `bench/`) and imports these and the library, never another study's
folder. Nothing in the library imports a study (tests/test_layout.py checks both).
"""
