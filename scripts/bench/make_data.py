"""Synthetic medical-o1-reasoning-SFT rows (Question, Complex_CoT, Response) of realistic lengths, for benchmarks:
word counts drawn from log-normal distributions with medians of about 45 (question), 260 (reasoning) and 120
(response) words, so that an example is ~300-1,500 tokens with a tail past 2,048. Deterministic for a seed.
    python3 scripts/bench/make_data.py --rows 2000 --out /tmp/data/medical.jsonl
"""
import argparse, json, math, random

WORDS = ("patient mg kg dose daily infusion rate hour blood pressure mmHg heart renal clearance creatinine weight "
         "calculate therefore the of and with for is in to a which gives per total volume ml drip factor minutes "
         "body mass index height metres divided by multiplied result approximately symptoms diagnosis treatment "
         "fever cough pain acute chronic history examination laboratory serum sodium potassium glucose insulin "
         "units tablet every hours maximum minimum adjust reduce increase monitor first second then so we need").split()

def text(rng, median_words, sigma):
    n = max(3, int(math.exp(rng.gauss(math.log(median_words), sigma))))
    out = []
    for i in range(n):
        w = rng.choice(WORDS) if rng.random() > 0.12 else str(rng.randint(1, 999))
        out.append(w)
        if rng.random() < 0.08: out[-1] += "."
    return " ".join(out).capitalize() + "."

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000); ap.add_argument("--seed", type=int, default=0); ap.add_argument("--out", required=True)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every median length (10: nearly all rows past 2,048 tokens)")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    with open(a.out, "w") as f:
        for _ in range(a.rows):
            f.write(json.dumps({"Question": text(rng, 45 * a.scale, 0.5), "Complex_CoT": text(rng, 260 * a.scale, 0.6), "Response": text(rng, 120 * a.scale, 0.6)}) + "\n")

if __name__ == "__main__":
    main()
