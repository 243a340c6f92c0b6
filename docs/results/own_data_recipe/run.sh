#!/usr/bin/env bash
# The README's own-data recipe ("Your own data": make-pairs --generate_nonspeech --pad_silence, train at the
# defaults with --merge_at_end, export-ct2 int8, evaluate, evaluate --backend faster-whisper), run as a user
# would, with the bundled tiny.en, on the silence study's corpus (`rlhf-asr results --study silence ...` writes
# it to results_output/corpus; its manifests are ordinary ASR manifests):
#   train: the 80 training texts in 6 espeak-ng voices; 72 generated no-speech clips (0.9 per text, as the
#          demo) and the speech padded with up to 25 s of generated sound, as the README's command writes them;
#   held out: 30 held-out texts in 2 voices training never heard, the study's 72 held-out non-speech clips
#          (brown and blue noise, hum, arpeggios, mixtures of 15-30 s: kinds make-pairs' generator also makes,
#          other clips), and 24 clips made here by sox, a synthesizer the tool does not use, of sounds its
#          generator does not make: plucked-string melodies, sawtooth chords with tremolo, DTMF dialling,
#          telephone-band noise at 8 kHz, frequency sweeps, square-wave beeps, low rumble, trapezium drones.
# Usage: bash docs/results/own_data_recipe/run.sh [CORPUS] [OUT]   (needs sox; make setup installs the rest)
set -euo pipefail
CORPUS=${1:-results_output/corpus}
OUT=${2:-results_output/own_data}
RLHF=${RLHF:-.venv/bin/rlhf-asr}
mkdir -p "$OUT" "$CORPUS/sox_nonspeech"

# 24 held-out non-speech clips by sox: 8 kinds x 3 lengths and levels
sox_clip() {  # name seconds gain effects...
  local name=$1 seconds=$2 gain=$3
  shift 3
  sox -q -n -r 16000 -c 1 -b 16 "$CORPUS/sox_nonspeech/$name.wav" "$@" gain -n "$gain"
}
notes() {  # a melody of plucked notes (semitones from A4), then reverb
  local name=$1 seconds=$2 gain=$3 i=0 parts=()
  while (( i * 4 < seconds * 10 )); do
    sox -q -n -r 16000 -c 1 -b 16 "$OUT/note$i.wav" synth 0.4 pluck "%$(( (i * 7) % 12 - 5 ))"
    parts+=("$OUT/note$i.wav"); i=$((i + 1))
  done
  sox -q "${parts[@]}" -b 16 "$CORPUS/sox_nonspeech/$name.wav" reverb 50 gain -n "$gain"
  rm -f "${parts[@]}"
}
dtmf() {  # dialling: 0.15 s digits, 0.1 s gaps
  local name=$1 seconds=$2 gain=$3 i=0 parts=() low=(697 770 852 941) high=(1209 1336 1477)
  while (( i * 25 < seconds * 100 )); do
    sox -q -r 16000 -c 2 -n -b 16 "$OUT/d$i.wav" synth 0.15 sine "${low[i % 4]}" sine "${high[i % 3]}" remix - pad 0 0.1
    parts+=("$OUT/d$i.wav"); i=$((i + 1))
  done
  sox -q "${parts[@]}" -b 16 "$CORPUS/sox_nonspeech/$name.wav" gain -n "$gain"
  rm -f "${parts[@]}"
}
for i in 0 1 2; do
  seconds=$(( 15 + 5 * i + (i == 2 ? 5 : 0) ))  # 15, 20, 30 s
  gain=$(( -6 - 8 * i ))                         # -6, -14, -22 dBFS peak
  notes "pluck_melody_$i" "$seconds" "$gain"
  sox -q -r 16000 -c 3 -n -b 16 "$CORPUS/sox_nonspeech/sawtooth_chords_$i.wav" \
    synth "$seconds" sawtooth $((220 + 30 * i)) sawtooth $((277 + 30 * i)) sawtooth $((330 + 30 * i)) \
    remix - tremolo 5 60 gain -n "$gain"
  dtmf "dtmf_$i" "$seconds" "$gain"
  sox -q -n -r 8000 -c 1 -b 16 "$CORPUS/sox_nonspeech/telephone_noise_8k_$i.wav" \
    synth "$seconds" whitenoise sinc 300-3400 gain -n "$gain"
  sox_clip "sweep_$i" "$seconds" "$gain" synth "$seconds" sine 200-$((2000 + 1000 * i))
  sox_clip "square_beeps_$i" "$seconds" "$gain" synth "$seconds" square 880 tremolo 2 100
  sox_clip "rumble_$i" "$seconds" "$gain" synth "$seconds" brownnoise lowpass 150
  sox_clip "trapezium_drone_$i" "$seconds" "$gain" synth "$seconds" trapezium $((110 + 55 * i)) 0 0 10 40 60
done
python3 - "$CORPUS" <<'EOF'
import json, subprocess, sys
from pathlib import Path
corpus = Path(sys.argv[1])
rows = []
for clip in sorted((corpus / "sox_nonspeech").glob("*.wav")):
    seconds = float(subprocess.run(["soxi", "-D", str(clip)], capture_output=True, text=True, check=True).stdout)
    rows.append({"audio": {"path": f"sox_nonspeech/{clip.name}"}, "duration": round(seconds, 3), "sentence": ""})
(corpus / "sox_nonspeech.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
held_out = (corpus / "test_voices.jsonl").read_text() + (corpus / "nonspeech_test.jsonl").read_text()
(corpus / "held_out.jsonl").write_text(held_out)
print(f"{len(rows)} sox clips; held_out.jsonl: {len(held_out.splitlines())} rows")
EOF

# the README's commands, as it writes them (0.9 generated no-speech clips per training text)
"$RLHF" make-pairs --model tiny.en --data "$CORPUS/train.jsonl" --output "$OUT/pairs.jsonl" --generate_nonspeech 72 --pad_silence 25
"$RLHF" train --model tiny.en --data "$OUT/pairs.jsonl" --output_dir "$OUT/run" --num_train_epochs 3 --merge_at_end
"$RLHF" export-ct2 "$OUT/run/merged" "$OUT/run-ct2" --quantization int8
"$RLHF" export-ct2 tiny.en "$OUT/base-ct2" --quantization int8
for data in held_out sox_nonspeech; do
  # after: the pipeline's defaults (evaluate's hf backend) and faster-whisper's on the int8 export
  "$RLHF" evaluate --model "$OUT/run/merged" --data "$CORPUS/$data.jsonl" --output "$OUT/after/$data/metrics.json"
  "$RLHF" evaluate --model "$OUT/run/merged" --data "$CORPUS/$data.jsonl" --backend faster-whisper \
    --ct2_model "$OUT/run-ct2" --output "$OUT/after_fw/$data/metrics.json"
  # before, under faster-whisper (the base model loops on non-speech under the pipeline's beam 5: the silence
  # study has its pipeline numbers on the same 72 clips)
  "$RLHF" evaluate --model tiny.en --data "$CORPUS/$data.jsonl" --backend faster-whisper \
    --ct2_model "$OUT/base-ct2" --output "$OUT/before_fw/$data/metrics.json"
done
python3 - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
keys = ("wer", "nonspeech_output_rate", "hallucination_rate", "rows_speech", "rows_no_speech")
for run in ("before_fw", "after", "after_fw"):
    for data in ("held_out", "sox_nonspeech"):
        metrics = json.loads((out / run / data / "metrics.json").read_text())
        print(run, data, {k: metrics.get(k) for k in keys})
EOF
