"""Data: where the rows of training, evaluation and make-pairs come from, how each is checked, what it becomes.

The contract, which every reader keeps:

A source is a `DataSource` (options.py): a location (a JSON-lines or JSON-array manifest, a
save_to_disk folder, parquet or arrow files, an audiofolder, a hub id in the local cache) with its
dataset options: the split, the hub config, which column holds each field, streaming, a row
limit. `DatasetOptions.source` is the one place one is built, the same options for train, evaluate
and make-pairs; each command names the split by its own option (`DataArguments.data_source`:
--train_split/--test_split; `commands/data_options.DataOptions.data_source`: --data_split), and the
Python API and tests turn a plain path into a source with `as_source`. A manifest ignores the
dataset options.

A reader yields `(index, row)` or `(index, BadRow)`, in the source's order. The index names the row
in every message and in its example's `where`: a manifest's 1-based line ("train.jsonl:12",
`json_rows.read_rows`), a dataset's 0-based row ("dataset X (train), row 17", sources.py). The row
is a dict in the manifest format (manifest.py says it): a dataset's row arrives already mapped to
it, its columns renamed and its audio a file with its real duration. A `BadRow` (a kind counted in
summaries, a reason) is a row that cannot be read at all: invalid JSON, text that is not UTF-8,
audio bytes no decoder reads.

The row checks are one frozen `RowChecks` (row_checks.py), built where the command's options are
known and handed whole to the readers: the fields and their types, transcripts (no control
characters: text_rules.py), the language (one the tokenizer knows, when given), the audio (there,
readable, its declared duration within the tolerance, at most Whisper's 30 s window unless
`long_audio`), the segments with `timestamps`. Each row becomes an example (PreferenceExample,
KBestExample, AsrExample: examples.py) or a `RowProblem` naming it. A duration outside
`min_duration` and `max_duration` is a filter, not an error: such rows are always skipped and counted.

Bad rows: without `skip_invalid` (--skip_invalid_rows) a read stops, in one `UserInputError`:
`manifest.read_manifest` (every manifest and dataset read whole) after reading every row, listing
the first five problems and how many there are, and also refusing a repeated row and a file that
mixes kinds of rows; `stream.ExampleStream` (--streaming) at the first bad row it reaches, since it
never holds every row. With `skip_invalid` bad rows are skipped and counted by kind
(`ManifestReport.summary`, `stream.read_summary`). Rows that pass but cannot be trained on (a
transcript longer than Whisper's decoder takes) are the training sets' second check (dataset.py,
kbest.py), under the same rule.

Pairs and K-best rows: `manifest.row_parser` picks what parses a row. A preference read with
`RowChecks.kbest_rows` (training, evaluation) tells the two apart by the row's fields: `reference`
and `candidates` make a K-best row (`make-pairs --nbest`, written by pairs/rows.py), anything else a
pair; a file holds one kind, its first usable row's. Without it (review, the demo) a K-best row is
a pair missing its fields. Evaluation picks the kind from a manifest's first row
(evaluation/evaluate.manifest_kind), a dataset's from its columns (`sources.data_kind`).

Modules:
    options.py        DataSource, Columns, DatasetOptions (torch-free: --help stays fast), as_source
    row_checks.py     RowChecks: what the readers check, and what they do with a bad row
    manifest.py       the manifest format, read_rows, the row checks, read_manifest and its reports
    sources.py        Hugging Face datasets as rows for the manifest reader (open_rows, read_data)
    dataset_files.py  parquet/arrow file names and globs of a dataset
    stream.py         ExampleStream: a dataset checked row by row while training; the shuffle buffer
    audio.py          audio files to 16 kHz mono arrays; every way a file can be unusable, named
    text_rules.py     characters no speech produces; what counts as silent text
    tokens.py         TranscriptEncoder: transcripts and segments to decoder token sequences
    nospeech_target.py  what a no-speech pair's chosen becomes (--nospeech_target)
    dataset.py        PreferenceDataset, StreamingPreferenceDataset: pairs as model inputs
    kbest.py          KBestDataset: K-best rows as model inputs
    collator.py       PreferenceCollator, CandidateCollator: batches of pairs or candidates
    augment.py        audio augmentation (--augment_config_path)
    nonspeech.py      non-speech clips for make-pairs: generated, or cut from the user's files
    synth_audio.py    the synthetic non-speech sounds (silence, noises, tones, hum, music-like)
"""
