"""faster-whisper over a speech manifest, scored exactly like `callcoach eval-asr`.

Usage:
  peer.py transcribe --model DIR --manifest TSV --compute-type int8|float32 --threads N
  peer.py score-callcoach --manifest TSV < eval-asr-output
  peer.py compare FILE...            (JSON-lines results -> per-clip speed ratios, overall)

Every output line is one JSON object. `transcribe` decodes each clip to 16 kHz before the
clock starts (as eval-asr does), warms the model up on the first clip, then times
`transcribe()` *including* draining its lazy segment generator, with beam 1 and English.

The normalisation below is a line-for-line port of src/cli/eval_asr/normalize.rs, so a WER
here and a WER from eval-asr count the same words; `score-callcoach` re-scores eval-asr's own
hypotheses with it and reports any clip where the two disagree.
"""

import argparse
import json
import sys
import time
from pathlib import Path

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
        "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
U64_MAX = 2**64 - 1


def cardinal(n):
    def below_1000(n, out):
        if n >= 100:
            out.append(ONES[n // 100])
            out.append("hundred")
        r = n % 100
        if r >= 20:
            out.append(TENS[r // 10])
            if r % 10 != 0:
                out.append(ONES[r % 10])
        elif r > 0 or n == 0:
            out.append(ONES[r])

    if n == 0:
        return "zero"
    out = []
    rest = n
    for value, name in [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand")]:
        if rest >= value:
            below_1000(min(rest // value, 999), out)
            out.append(name)
            rest %= value
    if rest > 0:
        below_1000(rest, out)
    return " ".join(out)


def year(n):
    hi, lo = n // 100, n % 100
    if lo == 0:
        return f"{cardinal(hi)} hundred"
    if lo <= 9:
        return f"{cardinal(hi)} oh {cardinal(lo)}"
    return f"{cardinal(hi)} {cardinal(lo)}"


def ordinal(words):
    if " " in words:
        head, last = words.rsplit(" ", 1)
        head += " "
    else:
        head, last = "", words
    special = {"one": "first", "two": "second", "three": "third", "five": "fifth",
               "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
    if last in special:
        last = special[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last = last + "th"
    return head + last


def is_ascii_digit(c):
    return "0" <= c <= "9"


def spell_number(tok):
    digits = "".join(c for c in tok if is_ascii_digit(c))
    i = 0
    while i < len(tok) and is_ascii_digit(tok[i]):
        i += 1
    suffix = tok[i:]
    if not digits or int(digits) > U64_MAX:  # Rust: digits.parse::<u64>() fails
        return tok
    n = int(digits)
    words = year(n) if 1100 <= n < 2000 and suffix == "" and len(digits) == 4 else cardinal(n)
    if suffix == "":
        return words
    if suffix in ("st", "nd", "rd", "th"):
        return ordinal(words)
    if suffix == "s":
        return words + "s"
    return f"{words} {suffix}"


def normalize(text):
    chars = list(text.lower())
    cleaned = []

    def between_digits(i):
        return 0 < i and i + 1 < len(chars) and is_ascii_digit(chars[i - 1]) and is_ascii_digit(chars[i + 1])

    for i, c in enumerate(chars):
        if c == "," and between_digits(i):
            continue
        if c == "." and between_digits(i):
            cleaned.append(" point ")
        elif c == "%":
            cleaned.append(" percent ")
        elif c in ("'", "\u2019"):
            continue
        elif c.isalnum():
            cleaned.append(c)
        else:
            cleaned.append(" ")
    out = []
    for w in "".join(cleaned).split():
        w = {"mr": "mister", "mrs": "missus", "dr": "doctor"}.get(w, w)
        if is_ascii_digit(w[0]):
            out.extend(spell_number(w).split())
        else:
            out.append(w)
    return out


def edit_distance(ref, hyp):
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref):
        cur = [i + 1] + [0] * len(hyp)
        for j, h in enumerate(hyp):
            cur[j + 1] = min(prev[j] + (r != h), prev[j + 1] + 1, cur[j] + 1)
        prev = cur
    return prev[len(hyp)]


def read_manifest(path):
    base = Path(path).parent
    clips = []
    with open(path, encoding="utf-8") as f:
        for line in f.read().splitlines()[1:]:
            if not line.strip():
                continue
            cols = line.split("\t")
            clips.append((cols[0], base / cols[0], cols[-1]))
    return clips


def emit(obj):
    print(json.dumps(obj), flush=True)


def transcribe(args):
    from faster_whisper import WhisperModel, decode_audio

    model = WhisperModel(args.model, device="cpu", compute_type=args.compute_type,
                         cpu_threads=args.threads, num_workers=1)
    clips = read_manifest(args.manifest)
    audio = [decode_audio(str(p), sampling_rate=16000) for _, p, _ in clips]
    opts = dict(beam_size=1, language="en")
    # Warm-up: the first call pays one-off allocations.
    list(model.transcribe(audio[0], **opts)[0])
    errors = words = 0
    total_s = audio_s = 0.0
    for (name, _, reference), samples in zip(clips, audio):
        start = time.perf_counter()
        segments, _info = model.transcribe(samples, **opts)
        text = " ".join(s.text.strip() for s in segments)  # the generator decodes lazily
        elapsed = time.perf_counter() - start
        ref, hyp = normalize(reference), normalize(text)
        e = edit_distance(ref, hyp)
        errors += e
        words += len(ref)
        total_s += elapsed
        seconds = len(samples) / 16000
        audio_s += seconds
        emit({"engine": f"faster-whisper-{args.compute_type}", "file": name, "seconds": round(seconds, 3),
              "elapsed_ms": round(elapsed * 1000, 1), "errors": e, "words": len(ref),
              "wer": round(e / max(len(ref), 1), 4), "text": text})
    emit({"engine": f"faster-whisper-{args.compute_type}", "file": "TOTAL", "clips": len(clips),
          "seconds": round(audio_s, 2), "elapsed_ms": round(total_s * 1000, 1), "errors": errors,
          "words": words, "wer": round(errors / max(words, 1), 4), "rtf": round(total_s / audio_s, 4),
          "threads": args.threads})


def score_callcoach(args):
    """eval-asr lines: file, 2.35s, WER x%, N ms, RTF, ctx, text (tab-separated)."""
    refs = {name: ref for name, _, ref in read_manifest(args.manifest)}
    errors = words = 0
    total_ms = audio_s = 0.0
    disagreements = 0
    n = 0
    for line in sys.stdin:
        cols = line.rstrip("\n").split("\t")
        if cols[0] == "TOTAL" or cols[0] not in refs or len(cols) < 7:
            continue
        name, seconds = cols[0], float(cols[1].rstrip("s"))
        own_wer = float(cols[2].split()[1].rstrip("%")) / 100
        elapsed_ms = float(cols[3].split()[0])
        text = "\t".join(cols[6:])
        ref, hyp = normalize(refs[name]), normalize(text)
        e = edit_distance(ref, hyp)
        wer = e / max(len(ref), 1)
        if abs(wer - own_wer) > 0.0006:  # eval-asr prints one decimal of a percent
            disagreements += 1
            print(f"peer.py: WER mismatch on {name}: eval-asr {own_wer:.4f}, here {wer:.4f}", file=sys.stderr)
        errors += e
        words += len(ref)
        total_ms += elapsed_ms
        audio_s += seconds
        n += 1
        emit({"engine": "callcoach", "file": name, "seconds": seconds, "elapsed_ms": elapsed_ms,
              "errors": e, "words": len(ref), "wer": round(wer, 4), "text": text})
    emit({"engine": "callcoach", "file": "TOTAL", "clips": n, "seconds": round(audio_s, 2),
          "elapsed_ms": round(total_ms, 1), "errors": errors, "words": words,
          "wer": round(errors / max(words, 1), 4), "rtf": round(total_ms / 1000 / max(audio_s, 1e-9), 4),
          "wer_disagreements": disagreements})


def compare(args):
    rows = {}
    for path in args.files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                rows.setdefault(r["engine"], {})[r["file"]] = r
    cc = rows.get("callcoach", {})
    peers = [e for e in rows if e != "callcoach"]
    for name, c in cc.items():
        if name == "TOTAL":
            continue
        out = {"file": name, "seconds": c["seconds"], "callcoach_ms": c["elapsed_ms"], "callcoach_wer": c["wer"]}
        for p in peers:
            r = rows[p].get(name)
            if r:
                out[f"{p}_ms"] = r["elapsed_ms"]
                out[f"{p}_wer"] = r["wer"]
                # > 1: callcoach is faster by that factor.
                out[f"speedup_vs_{p}"] = round(r["elapsed_ms"] / max(c["elapsed_ms"], 1e-6), 3)
        emit(out)
    if "TOTAL" in cc:
        c = cc["TOTAL"]
        out = {"file": "TOTAL", "seconds": c["seconds"], "callcoach_ms": c["elapsed_ms"], "callcoach_wer": c["wer"]}
        for p in peers:
            r = rows[p].get("TOTAL")
            if r:
                out[f"{p}_ms"] = r["elapsed_ms"]
                out[f"{p}_wer"] = r["wer"]
                out[f"speedup_vs_{p}"] = round(r["elapsed_ms"] / max(c["elapsed_ms"], 1e-6), 3)
        emit(out)


def self_test():
    """The cases of normalize.rs's own tests: the port must give the same words."""
    n = lambda s: " ".join(normalize(s))
    assert n("Printing, then, for our purpose;") == "printing then for our purpose"
    assert n('the "lower-case" letters') == "the lower case letters"
    assert n("Mr. Dashwood doesn't") == "mister dashwood doesnt"
    assert n("in the year 1462)") == n("in the year fourteen sixty-two)")
    assert n("10 of clubs") == "ten of clubs"
    assert n("the 15th century") == "the fifteenth century"
    assert n("42-line Bible") == "forty two line bible"
    assert n("1,000 copies") == "one thousand copies"
    assert n("3.5%") == "three point five percent"
    assert n("1900") == "nineteen hundred"
    assert n("2024") == "two thousand twenty four"
    assert n("the 20th and 21st") == "the twentieth and twenty first"
    w = normalize
    assert edit_distance(w("a b c"), w("a x c")) == 1
    assert edit_distance(w("a b c"), w("a c")) == 1
    assert edit_distance(w("a b c"), w("a b c d e")) == 2
    assert edit_distance(w(""), w("a b")) == 2


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("transcribe")
    t.add_argument("--model", required=True)
    t.add_argument("--manifest", required=True)
    t.add_argument("--compute-type", required=True, choices=["int8", "float32"])
    t.add_argument("--threads", type=int, required=True)
    s = sub.add_parser("score-callcoach")
    s.add_argument("--manifest", required=True)
    c = sub.add_parser("compare")
    c.add_argument("files", nargs="+")
    sub.add_parser("self-test")
    args = p.parse_args()
    if args.cmd == "transcribe":
        self_test()
        transcribe(args)
    elif args.cmd == "score-callcoach":
        self_test()
        score_callcoach(args)
    elif args.cmd == "compare":
        compare(args)
    else:
        self_test()
        print("peer.py: normalisation matches normalize.rs's test cases")


if __name__ == "__main__":
    main()
