"""Turns one scripts/on_gpu.sh run into markdown: the device, every case our bench timed, our
kernels against the PyTorch peers measured in the same run (speedup = torch ms / our ms), the
top-k sweep behind Strategy::Auto, an A/B against other revisions' benches where they were
staged, the same kernels compiled with other sets of wgpu's shader checks where a step ran them,
and the GPU test results.

usage: python3 scripts/gpu_report.py DIR > report.md
DIR holds our bench's *.json reports, torch_peers.py's anchors.jsonl, torch_extra.py's
anchors_extra.jsonl and tests.log; whatever is missing is left out of the report.
"""
import glob, json, os, re, sys
from collections import defaultdict


def ab_rev(name):
    """The revision of an A/B base report (ab_base.REV.json; an older ab_base.json: "base"),
    or None for our own reports."""
    m = re.match(r"ab_base(?:\.(.+))?\.json$", name)
    return None if m is None else (m[1] or "base")

# Issue 4's H100 targets for top-k, ms (rows, n, k).
TOPK_TARGET_MS = {(4096, 65536, 32): 0.6, (4096, 65536, 256): 0.8, (1, 131072, 2048): 0.020,
                  (64, 131072, 2048): 0.040, (65536, 4096, 64): 0.6}


def load(d):
    reports = []
    for path in sorted(glob.glob(os.path.join(d, "*.json"))):
        with open(path) as f:
            reports.append((os.path.basename(path), json.load(f)))
    peers = []
    for name in ("anchors.jsonl", "anchors_extra.jsonl"):
        path = os.path.join(d, name)
        if os.path.exists(path):
            with open(path) as f:
                peers += [json.loads(line) for line in f if line.strip()]
    return reports, peers


def ms(x):
    return "—" if x is None else (f"{x * 1e3:.1f} µs" if x < 1 else f"{x:.3f} ms")


def ratio(peer, ours):
    return "—" if peer is None or not ours else f"{peer / ours:.2f}×"


def peer(peers, what, **match):
    for p in peers:
        if p.get("what") == what and "error" not in p and all(p.get(k) == v for k, v in match.items()):
            return p
    return None


CHECK_NAMES = ["bounds", "loop-bounding", "integer-division", "zero-workgroup-memory"]


def kernel_stats(d):
    """{setting label: {kernel::entry: {statistic: value}}} from on_gpu.sh's
    kernel_stats.SETTING.log files (examples/kernel_stats.rs: "name::entry Stat=v, ...")."""
    out = {}
    for path in sorted(glob.glob(os.path.join(d, "kernel_stats.*.log"))):
        setting = os.path.basename(path)[len("kernel_stats."):-len(".log")]
        if setting in ("all", "none"):
            label = setting
        else:
            kept = setting.split(",")
            label = "all but " + ", ".join(c for c in CHECK_NAMES if c not in kept)
        per = {}
        with open(path) as f:
            for line in f:
                m = re.match(r"(\S+::\S+) (.*=.*)$", line.strip())
                if m:
                    per[m[1]] = dict(kv.split("=", 1) for kv in m[2].split(", ") if "=" in kv)
        if per:
            out[label] = per
    return out


# The library's default shader checks (ShaderChecks::DEFAULT, all but loop bounding) as our
# bench prints them: reports compiled with them are the main tables, the others feed the
# shader-check comparison.
DEFAULT_CHECKS = "bounds,integer-division,zero-workgroup-memory"


def checks(report):
    """The shader checks a bench report's kernels were compiled with (older reports: all)."""
    return report.get("shader_checks", "all")


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


# The sweep's paths (bench topk_sweep_cases): radix, the default one pass (wide tiles, vec4
# loads) and at 4 rows per workgroup, and the row select with its core, shuffled (subgroup
# tier) and bucket sorts, and split over a workgroup per tile, core and shuffled (k = 2048:
# radix and the row selects only).
SWEEP_PATHS = ["Radix", "OnePass", "OnePass r=4", "RowSelect", "RowSelect subgroups",
               "RowSelect buckets", "RowSelect split", "RowSelect subgroups split"]


AUTO_PATHS = ["Radix", "OnePass", "RowSelect"]


def sweep_table(cases, setting):
    """Every path per shape, and what Strategy::Auto picked among its three (radix, the
    default one pass, the row select)."""
    sweep = defaultdict(dict)
    for c in cases:
        m = re.match(r"(\d+)x(\d+) k=(\d+) (.+)$", c["shape"])
        key = tuple(map(int, m.groups()[:3]))
        sweep[key][m[4]] = c["median_ms"]
        if "Strategy::Auto" in c["note"]:
            sweep[key]["auto"] = m[4]
    print(f"## Top-k sweep, shader checks: {setting}\n")
    wrong = 0
    wins = defaultdict(int)
    rows = []
    for key in sorted(sweep):
        v = sweep[key]
        if "Radix" not in v:
            continue
        # Auto chooses among the three defaults; the other variants are opt-ins beside them.
        best = min((p for p in AUTO_PATHS if p in v), key=v.get)
        wrong += v.get("auto") != best
        fastest = min((p for p in SWEEP_PATHS if p in v), key=v.get)
        wins[fastest] += 1
        rows.append([f"{key[0]}×{key[1]}, k = {key[2]}"] + [ms(v.get(p)) for p in SWEEP_PATHS]
                    + [fastest, v.get("auto", "?") + ("" if v.get("auto") == best else " ✗")])
    print(table(["shape", "radix", "one pass", "one pass r=4", "row select", "shuffled",
                 "buckets", "split", "split shuffled", "fastest", "Auto picks"], rows))
    print(f"Auto misses the fastest of radix, one pass and row select in {wrong} of {len(rows)} shapes. "
          "Fastest: " + ", ".join(f"{p} {wins[p]}" for p in SWEEP_PATHS if wins[p]) + ".\n")


def target_status(auto_ms, best_ms, target):
    """Whether Auto's time meets the issue's target, and if not, whether the fastest variant
    of the same run would (then adopting it as the default is what meets it)."""
    if target is None:
        return "—"
    if auto_ms <= target:
        return "met"
    if best_ms <= target:
        return f"missed ({ms(target)}); the fastest meets it"
    return f"missed ({ms(target)})"


def main(d):
    reports, peers = load(d)
    # ab_base.REV.json are other revisions' benches (scripts/stage_gpu.sh AB_REV): only the
    # A/B table below reads them.
    bases = {ab_rev(name): r["results"] for name, r in reports if ab_rev(name)}
    reports = [(name, r) for name, r in reports if not ab_rev(name)]
    # Runs with other shader checks (bench --shader-checks) only feed the checks table below.
    cases = [c for name, r in reports if checks(r) == DEFAULT_CHECKS for c in r["results"]]
    fewer = [(checks(r), c) for name, r in reports if checks(r) != DEFAULT_CHECKS
             for c in r["results"]]
    print("# GPU run\n")
    for name, r in reports[:1]:
        print(f"- adapter: {r['adapter']} ({r['backend']}, {r['device_type']}), "
              f"driver {r['driver']} {r['driver_info']}")
        print(f"- our device-to-device copy bandwidth (read + write): {r['peak_gbps']:.0f} GB/s")
    per = [c["median_ms"] / int(c["shape"].split()[0]) for c in cases
           if c["kernel"] == "dispatch_overhead" and c["shape"].split()[0] != "1"]
    if per:
        print(f"- cost per dependent dispatch: {min(per) * 1e3:.1f}–{max(per) * 1e3:.1f} µs")
    dev = peer(peers, "device")
    if dev:
        print(f"- PyTorch {dev.get('torch')} on {dev.get('name')}")
    copy = peer(peers, "d2d_copy")
    if copy:
        print(f"- torch device-to-device copy: {copy['gbps']:.0f} GB/s")
    print()

    for name, r in reports:
        if all(c["kernel"] == "topk_sweep" for c in r["results"]):
            continue  # summarised below
        print(f"## {name}\n")
        print(table(["kernel", "shape", "median", "GB/s", "% copy bw", "TFLOP/s", "note"],
                    [[c["kernel"], c["shape"], ms(c["median_ms"]), f"{c['gbps']:.3g}",
                      "—" if c["pct_of_peak"] is None else f"{c['pct_of_peak']:.2g}",
                      f"{c['tflops']:.1f}" if c["tflops"] else "—", c["note"]]
                     for c in r["results"] if c["kernel"] != "topk_sweep"]))

    rows = []
    for c in cases:
        k, s, t = c["kernel"], c["shape"], c["median_ms"]
        if k == "topk" and "Strategy::Auto" in c["note"]:
            m = re.match(r"(\d+)x(\d+) k=(\d+) (\w+)", s)
            r_, n, kk = map(int, m.groups()[:3])
            # Sorted, whole runs only: torch.topk sorts too, and a profiled case ("to Floor")
            # stops early.
            variants = [v for v in cases if v["kernel"] == "topk"
                        and v["shape"].startswith(f"{r_}x{n} k={kk} ")
                        and "unsorted" not in v["shape"] and " to " not in v["shape"]]
            best = min(variants, key=lambda v: v["median_ms"])
            p = peer(peers, "topk", rows=r_, n=n, k=kk)
            target = TOPK_TARGET_MS.get((r_, n, kk))
            rows.append(["topk (Auto: " + m.group(4) + ")", f"{r_}×{n}, k = {kk}", ms(t),
                         f"{best['shape'].split(' ', 2)[2]}: {ms(best['median_ms'])}",
                         ms(p and p["ms"]), ratio(p and p["ms"], t),
                         target_status(t, best["median_ms"], target)])
        elif k == "dense_attention" and (m := re.match(r"h(\d+) n(\d+) d64 causal", s)):
            p = peer(peers, "sdpa", n=int(m[2]), H=int(m[1]), d=64, dtype="torch.float32", causal=True)
            rows.append([k, s, ms(t), "", ms(p and p["ms"]), ratio(p and p["ms"], t), ""])
        elif k == "dense_attention" and s.startswith("decode"):
            p = peer(peers, "sdpa_decode")
            rows.append([k, s, ms(t), "", ms(p and p["ms"]), ratio(p and p["ms"], t), ""])
        elif k == "topk_attention" and (m := re.match(r"h(\d+) n(\d+) d64 k(\d+) causal (\w+)", s)):
            p = peer(peers, "knn_attention_torch", n=int(m[2]), k=int(m[3]))
            rows.append([k, s, ms(t), "", ms(p and p["fwd_ms"]), ratio(p and p["fwd_ms"], t), ""])
        elif k == "dense_attention_backward" and (m := re.match(r"h(\d+) n(\d+)", s)):
            p = peer(peers, "sdpa_backward", n=int(m[2]), dtype="torch.float32")
            rows.append([k, s, ms(t), "", ms(p and p["ms"]), ratio(p and p["ms"], t), ""])
        elif k == "sparse_attention_backward" and (m := re.match(r"h(\d+) n(\d+) d64 k(\d+)", s)):
            p = peer(peers, "knn_attention_torch", n=int(m[2]), k=int(m[3]))
            e = p and p["bwd_ms_est"]
            rows.append([k, s, ms(t), "", ms(e), ratio(e, t), "torch: fwd+bwd − fwd"])
        elif k in ("gumbel_max", "lazy_gumbel") and (m := re.match(r"(\d+)x(\d+) L=16", s)):
            p = peer(peers, "sampling", rows=int(m[1]), n=int(m[2]), L=16)
            rows.append([k, s, ms(t), "", ms(p and p["multinomial_ms"]),
                         ratio(p and p["multinomial_ms"], t), "torch.multinomial"])
    if rows:
        print("## Against PyTorch (same run)\n")
        print(table(["ours", "shape", "median", "fastest variant", "PyTorch", "speedup",
                     "issue target"], rows))

    # The sweep at each shader-check setting it ran with (the library's default first).
    by_checks = defaultdict(list)
    for name, r in reports:
        by_checks[checks(r)] += [c for c in r["results"] if c["kernel"] == "topk_sweep"]
    for setting in sorted(by_checks, key=lambda s: (s != DEFAULT_CHECKS, s)):
        if by_checks[setting]:
            sweep_table(by_checks[setting], setting)

    ours = {(c["kernel"], c["shape"]): c["median_ms"] for c in cases}
    # The opt-in top-k experiments, each against the same case without it (bench labels:
    # " r=N" and " ahead" wide_rows / wide_prefetch, " bits" wide_bit_tests, " lean" wide_lean,
    # " fold" wide_floor_fold, " keys" values_from_keys, " buckets"
    # select_buckets, and " subgroups" on the row select; " split" select_split against the
    # same row select without it).
    rows = []
    for c in cases:
        s_ = c["shape"]
        if c["kernel"] != "topk":
            continue
        base = re.sub(r" (r=\d+|ahead|not ahead|bits|lean|fold|keys|buckets)\b", "", s_)
        if "RowSelect" in s_:
            base = base.replace(" subgroups", "")
        if s_.endswith(" split"):
            base = re.sub(r" sg=\d+", "", s_[: -len(" split")])
        if base != s_ and ("topk", base) in ours:
            rows.append(["topk", s_, ms(ours[("topk", base)]), ms(c["median_ms"]),
                         ratio(ours[("topk", base)], c["median_ms"])])
    if rows:
        print("## Top-k experiments against the same case without them (same run; "
              "speedup = without / with)\n")
        print(table(["kernel", "shape", "without", "with", "speedup"], rows))

    revs = sorted(bases)
    times = {rev: {(c["kernel"], c["shape"]): c["median_ms"] for c in bases[rev]} for rev in revs}
    keys = [k for k in ours if any(k in times[rev] for rev in revs)]
    rows = [[k[0], k[1]] + [ms(times[rev].get(k)) for rev in revs] + [ms(ours[k])]
            + [ratio(times[rev].get(k), ours[k]) for rev in revs] for k in keys]
    if rows:
        print("## A/B: this build against AB_REV (same run; speedup = AB_REV / this build)\n")
        print(table(["kernel", "shape"] + revs + ["this build"]
                    + [f"speedup vs {rev}" for rev in revs], rows))

    rows = [[c["kernel"], c["shape"], ms(ours[key]), kept, ms(c["median_ms"]),
             ratio(ours[key], c["median_ms"])]
            for kept, c in fewer if (key := (c["kernel"], c["shape"])) in ours]
    if rows:
        print("## Shader checks: the library's default (all but loop bounding) against "
              "others (same run)\n")
        print(table(["kernel", "shape", "default", "checks kept", "median",
                     "default / this"], rows))

    stats = kernel_stats(d)
    if len(stats) > 1:
        labels = list(stats)
        rows = []
        for kernel in sorted(set().union(*(stats[l].keys() for l in labels))):
            names = sorted(set().union(*(stats[l].get(kernel, {}).keys() for l in labels)))
            for name in names:
                values = [stats[l].get(kernel, {}).get(name, "—") for l in labels]
                if len(set(v for v in values if v != "—")) > 1:
                    rows.append([kernel, name] + values)
        print("## Driver statistics that change with the shader checks (kernel_stats)\n")
        if rows:
            print(table(["kernel", "statistic"] + labels, rows))
        else:
            print(f"None: every statistic of every kernel is the same under {', '.join(labels)}.\n")

    log = os.path.join(d, "tests.log")
    if os.path.exists(log):
        with open(log) as f:
            lines = [l.rstrip() for l in f if re.match(r"## |test result|.*FAILED|.*panicked", l)]
        print("## Tests on this GPU\n\n```\n" + "\n".join(lines) + "\n```")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT", "."))
