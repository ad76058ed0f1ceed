#!/usr/bin/env bash
# Render the generated two-speaker sales call used by the integration tests, `callcoach replay`
# examples and `callcoach loadgen`.
#
#   scripts/make-call.sh [OUT_DIR] [SCRIPT_TSV]
#
# Writes OUT_DIR/sales-call.wav (16 kHz stereo s16: agent on channel 0, customer on channel 1)
# and OUT_DIR/sales-call.json (the ground truth: every line's speaker, channel, start/end and
# text). The audio is ~11 MB (175 s), so it is generated rather than committed; the output is
# deterministic and cached: a second run with the same script and generator does nothing.
#
# Voices: the agent is espeak-ng (en-us, male variant m3), the customer festival with the
# cmu_us_slt_arctic_hts voice (female) — two engines so the speakers are clearly different.
# Needs: espeak-ng, sox, festival, festvox-us-slt-hts (Debian packages of the same names).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${1:-$ROOT/target/calls}"
SCRIPT="${2:-$ROOT/assets/calls/sales-call.tsv}"
NAME="$(basename "$SCRIPT" .tsv)"

RATE=16000
# Pause between two sentences of one speaker's turn: longer than the segmenter's 400 ms
# endpoint (CONTRACTS.md) so each sentence is its own utterance, short enough to read as one turn.
INTRA_TURN_GAP_MS=450
# Pauses between turns, cycled in order: all within the 0.5-1.0 s of a natural phone call.
TURN_GAPS_MS=(600 850 500 950 700 800 550 1000 650 750)
# Silence before the first line and after the last, so the endpointer closes the final
# utterance before the stream stops.
LEAD_IN_MS=500
TAIL_MS=1500
AGENT_VOICE=(espeak-ng -v en-us+m3 -s 165)
CUSTOMER_VOICE_EVAL="(voice_cmu_us_slt_arctic_hts)"

for tool in espeak-ng sox soxi text2wave sha256sum; do
    command -v "$tool" >/dev/null || {
        echo "make-call: \`$tool\` not found (apt-get install espeak-ng sox festival festvox-us-slt-hts)" >&2
        exit 2
    }
done
[ -f "$SCRIPT" ] || { echo "make-call: no script at $SCRIPT" >&2; exit 2; }

mkdir -p "$OUT_DIR"
WAV="$OUT_DIR/$NAME.wav"
JSON="$OUT_DIR/$NAME.json"
KEY="$(cat "$SCRIPT" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"

# Tests run in parallel and may all ask for the call at once: one renders, the others wait.
exec 9>"$OUT_DIR/.$NAME.lock"
flock 9
if [ -f "$JSON" ] && [ -f "$WAV" ] && grep -q "\"source_sha256\": \"$KEY\"" "$JSON"; then
    exit 0
fi

WORK="$(mktemp -d "$OUT_DIR/.render.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

ms_to_samples() { echo $(( $1 * RATE / 1000 )); }
silence() { # silence FILE SAMPLES
    sox -r "$RATE" -c 1 -n -b 16 "$1" trim 0 "${2}s"
}
json_escape() { # JSON string body of $1
    local s="${1//\\/\\\\}"
    s="${s//\"/\\\"}"
    printf '%s' "$s"
}
fmt_s() { # samples -> seconds with 3 decimals
    printf '%d.%03d' $(( $1 / RATE )) $(( ($1 % RATE) * 1000 / RATE ))
}

declare -a CH0=() CH1=()
cursor=$(ms_to_samples $LEAD_IN_MS)  # where the next line starts (samples, both channels)
end0=0 end1=0                         # how far each channel's audio is filled
prev_speaker="" turn=0 turn_gap_i=0 index=0
LINES_JSON=""

while IFS=$'\t' read -r speaker tags text; do
    case "$speaker" in
        ''|'#'*|speaker) continue ;;
        agent) channel=0 ;;
        customer) channel=1 ;;
        *) echo "make-call: unknown speaker \`$speaker\` in $SCRIPT" >&2; exit 2 ;;
    esac
    raw="$WORK/raw-$index.wav"
    line="$WORK/line-$index.wav"
    if [ "$channel" = 0 ]; then
        "${AGENT_VOICE[@]}" -w "$raw" "$text"
    else
        printf '%s\n' "$text" > "$WORK/text-$index.txt"
        text2wave -eval "$CUSTOMER_VOICE_EVAL" -o "$raw" "$WORK/text-$index.txt"
    fi
    # Trim the engines' own leading/trailing silence so start/end are where speech is, then
    # 16 kHz mono at -3 dBFS peak so both voices are equally loud. -R: repeatable dither.
    sox -R "$raw" -b 16 "$line" silence 1 0.02 -45d reverse silence 1 0.02 -45d reverse \
        channels 1 rate -v "$RATE" gain -n -3
    len=$(soxi -s "$line")

    if [ -n "$prev_speaker" ]; then
        if [ "$speaker" = "$prev_speaker" ]; then
            gap_ms=$INTRA_TURN_GAP_MS
        else
            gap_ms=${TURN_GAPS_MS[$(( turn_gap_i % ${#TURN_GAPS_MS[@]} ))]}
            turn_gap_i=$(( turn_gap_i + 1 ))
            turn=$(( turn + 1 ))
        fi
        cursor=$(( cursor + $(ms_to_samples "$gap_ms") ))
    fi
    start=$cursor
    end=$(( start + len ))

    if [ "$channel" = 0 ]; then
        if [ $(( start - end0 )) -gt 0 ]; then
            silence "$WORK/sil-$index.wav" $(( start - end0 )); CH0+=("$WORK/sil-$index.wav")
        fi
        CH0+=("$line"); end0=$end
    else
        if [ $(( start - end1 )) -gt 0 ]; then
            silence "$WORK/sil-$index.wav" $(( start - end1 )); CH1+=("$WORK/sil-$index.wav")
        fi
        CH1+=("$line"); end1=$end
    fi

    tags_json=""
    if [ "$tags" != "-" ]; then
        IFS=',' read -ra tag_list <<< "$tags"
        for t in "${tag_list[@]}"; do tags_json+="${tags_json:+, }\"$(json_escape "$t")\""; done
    fi
    LINES_JSON+="${LINES_JSON:+,
}    {\"index\": $index, \"turn\": $turn, \"speaker\": \"$speaker\", \"channel\": $channel, \"start_ms\": $(( start * 1000 / RATE )), \"end_ms\": $(( end * 1000 / RATE )), \"start_s\": $(fmt_s $start), \"end_s\": $(fmt_s $end), \"tags\": [$tags_json], \"text\": \"$(json_escape "$text")\"}"

    cursor=$end
    prev_speaker=$speaker
    index=$(( index + 1 ))
done < "$SCRIPT"

[ "$index" -gt 0 ] || { echo "make-call: $SCRIPT has no lines" >&2; exit 2; }
total=$(( cursor + $(ms_to_samples $TAIL_MS) ))
silence "$WORK/tail0.wav" $(( total - end0 )); CH0+=("$WORK/tail0.wav")
silence "$WORK/tail1.wav" $(( total - end1 )); CH1+=("$WORK/tail1.wav")
sox "${CH0[@]}" "$WORK/ch0.wav"
sox "${CH1[@]}" "$WORK/ch1.wav"
sox -M "$WORK/ch0.wav" "$WORK/ch1.wav" -b 16 "$WORK/call.wav"

cat > "$WORK/call.json" <<EOF
{
  "source_sha256": "$KEY",
  "wav": "$NAME.wav",
  "sample_rate": $RATE,
  "channels": 2,
  "channel_tracks": ["agent", "customer"],
  "duration_ms": $(( total * 1000 / RATE )),
  "voices": {"agent": "espeak-ng en-us+m3 165 wpm", "customer": "festival cmu_us_slt_arctic_hts"},
  "lines": [
$LINES_JSON
  ]
}
EOF
# The JSON goes last: its presence with the right key is what marks the render complete.
mv "$WORK/call.wav" "$WAV"
mv "$WORK/call.json" "$JSON"
echo "make-call: wrote $WAV ($(fmt_s $total) s) and $JSON" >&2
