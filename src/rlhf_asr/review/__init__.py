"""Human feedback: a local review page where people judge a model's transcripts, and export to pairs.

clips.py reads the data, candidates.py precomputes the N-best, store.py keeps everything in SQLite
(WAL), app.py serves the page, export.py / labelstudio.py write pairs, loadcheck.py measures serving.
"""
