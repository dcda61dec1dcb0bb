"""Sums Nsight Compute's per-kernel durations (its CSV) over the last training step, for kernel-profile.sh: the kernel
sequence repeats every step, so the step is the shortest tail that equals the stretch before it.
    python3 ncu_sum.py ncu.csv"""
import collections, csv, sys

with open(sys.argv[1]) as f:
    lines = [l for l in f if l.startswith('"')]
rows = []
for r in csv.DictReader(lines):
    if r.get("Metric Name") == "gpu__time_duration.sum":
        try: rows.append((r["Kernel Name"][:120], float(r["Metric Value"].replace(",", ""))))
        except ValueError: pass
names = [n for n, _ in rows]
print(f"kernels profiled: {len(rows)}")
period = next((p for p in range(50, len(names) // 2 + 1) if names[-p:] == names[-2 * p:-p]), None)
print(f"step period: {period}")
step = rows[-period:] if period else rows[-2000:]
total = sum(t for _, t in step)
print(f"one step: {len(step)} kernels, {total / 1e6:.3f} ms of kernel time")
by_name = collections.defaultdict(lambda: [0, 0.0])
for n, t in step: by_name[n][0] += 1; by_name[n][1] += t
for n, (c, t) in sorted(by_name.items(), key=lambda kv: -kv[1][1])[:70]:
    print(f"{t / 1e3:10.1f} us {100 * t / total:5.1f}% x{c:4d}  {n}")
print("\nsequence of the step (us, name):")
for n, t in step: print(f"{t / 1e3:9.1f}  {n[:100]}")
