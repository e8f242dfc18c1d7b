"""The embedded models, their average and the embedded ensemble bundle that computes it in one graph, on every real
labelled face photograph we could gather: per set and per class (docs/RESEARCH.md, "Which embedded model reads real
faces best").

    python -m bench.real_faces --mirrors /work/.mirror [--out bench/results/real_faces.json]

The photographs stay out of git (their licences do not let us ship them, or say nothing); this lays them out as
labelled folders (FOLDER/<label>/<image>) from copies of their public repositories (`--mirrors`: one git directory
per repository, as OWNER+NAME/repo) and from installed packages, then runs models.faces_eval on each set:

| set | where | photographs | licence |
|---|---|---|---|
| faceapi-js | justadudewhohacks/face-api.js examples/images/{angry,...}.jpg | 7, one per class | repository MIT; the photographs' own source unstated |
| ros4hri | ros4hri/hri_emotion_recognizer test/data (image_labels.csv, user_angry.jpg) | 10 | repository Apache-2.0; photographs' source unstated |
| ckplus48-test | WuJie1010/Facial-Expression-Recognition.Pytorch CK+48/ (CK+, Lucey et al. 2010), odd-numbered subjects | 48x48 face crops (read whole) | CK+: non-commercial research only |
| ckplus48-calib | the same, even-numbered subjects | | used only to fit temperatures, never reported |
| skimage | scikit-image's astronaut (Eileen Collins, NASA, public domain), smiling: happy | 1 | public domain |

Temperatures are fitted on ckplus48-calib only (`--fit-on`), and expected calibration errors are reported on the
other sets: no set both tunes and reports. The average is computed here from the members' own crops; the ensemble
bundle (export/ensemble.py) takes one crop and makes theirs inside its graph, with member temperatures recorded at
export from the same fitting set (checked against the ones fitted here), and gets a temperature of its own on top.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from service.config import ASSETS_DIR

BUNDLES = [ASSETS_DIR / "bundles" / "fer-mini-xception", ASSETS_DIR / "bundles" / "faceapi-expression"]
ENSEMBLE = ASSETS_DIR / "bundles" / "expression-ensemble"
FACEAPI_PHOTOS = ("angry", "disgusted", "fearful", "happy", "neutral", "sad", "surprised")


def _git_show(repo: Path, path: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(subprocess.run(["git", "--git-dir", str(repo), "show", f"HEAD:{path}"], check=True,
                                    capture_output=True).stdout)


def _git_ls(repo: Path, under: str) -> list[str]:
    out = subprocess.run(["git", "--git-dir", str(repo), "ls-tree", "-r", "--name-only", "HEAD", under], check=True,
                         capture_output=True, text=True).stdout
    return out.split()


def lay_out(mirrors: Path, root: Path) -> dict[str, dict]:
    """Each set as FOLDER/<label>/<image> under root: {set: {"folder", "whole_image"}}."""
    sets = {}
    faceapi = mirrors / "justadudewhohacks+face-api.js" / "repo"
    if faceapi.exists():
        for name in FACEAPI_PHOTOS:
            _git_show(faceapi, f"examples/images/{name}.jpg", root / "faceapi-js" / name / f"{name}.jpg")
        sets["faceapi-js"] = {"folder": root / "faceapi-js", "whole_image": False}
    ros = mirrors / "ros4hri+hri_emotion_recognizer" / "repo"
    if ros.exists():
        listing = subprocess.run(["git", "--git-dir", str(ros), "show", "HEAD:test/data/image_labels.csv"],
                                 check=True, capture_output=True, text=True).stdout.splitlines()[1:]
        rows = [line.split(",") for line in listing if line.strip()] + [["user_angry.jpg", "ANGRY"]]
        for filename, label in rows:
            _git_show(ros, f"test/data/{filename}", root / "ros4hri" / label.lower() / filename)
        sets["ros4hri"] = {"folder": root / "ros4hri", "whole_image": False}
    ck = mirrors / "WuJie1010+Facial-Expression-Recognition.Pytorch" / "repo"
    if ck.exists():
        for path in _git_ls(ck, "CK+48"):
            label, filename = path.split("/")[1:]
            subject = int(filename.split("_")[0].lstrip("S"))
            part = "ckplus48-calib" if subject % 2 == 0 else "ckplus48-test"
            _git_show(ck, path, root / part / label / filename)
        sets["ckplus48-test"] = {"folder": root / "ckplus48-test", "whole_image": True}
        sets["ckplus48-calib"] = {"folder": root / "ckplus48-calib", "whole_image": True}
    import cv2
    from skimage import data

    (root / "skimage" / "happy").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "skimage" / "happy" / "astronaut.png"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    sets["skimage"] = {"folder": root / "skimage", "whole_image": False}
    return sets


def calibrated_copies(bundles: list[Path], fit_on: dict, work: Path) -> list[Path]:
    """Copies of the bundles with a temperature fitted on the fitting set (the originals are left as they are)."""
    from export.calibrate import calibrate_bundle
    from service.bundle import ModelBundle

    out = []
    for directory in bundles:
        copy = work / directory.name
        shutil.copytree(directory, copy)
        calibrate_bundle(ModelBundle.load(copy), fit_on["folder"], whole_image=fit_on["whole_image"])
        out.append(copy)
    return out


def member_temperatures(ensemble, fitted: dict[str, float]) -> dict[str, dict]:
    """Each member's temperature inside the ensemble's graph beside the one fitted here on the same set."""
    out = {}
    for member in ensemble.spec.members:
        recorded = (member["calibration"] or {}).get("temperature", 1.0)
        out[member["name"]] = {"in_graph": recorded, "fitted_here": fitted.get(member["name"])}
        if fitted.get(member["name"]) is not None and abs(recorded - fitted[member["name"]]) > 1e-3:
            print(f"note: {ensemble.spec.name} holds {member['name']} at T={recorded}, fitted here: "
                  f"{fitted[member['name']]} (re-export it: make ensemble-bundle)", file=sys.stderr)
    return out


def _row(name: str, m: dict) -> str:
    recall = " ".join(f"{k[:4]} {'-' if v is None else f'{v:.2f}'}" for k, v in m["recall"].items())
    return (f"  {name:<22} {m['samples']:>4} faces  WAR {m['war']:.3f}  UAR {m['uar']:.3f}  ECE {m['ece_t1']:.3f} -> "
            f"{m['ece']:.3f}  | {recall}")


def main(argv: list[str] | None = None) -> int:
    from models.faces_eval import evaluate_on_faces
    from service.bundle import ModelBundle

    parser = argparse.ArgumentParser(prog="python -m bench.real_faces", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirrors", type=Path, required=True, help="folder of git mirrors OWNER+NAME/repo")
    parser.add_argument("--out", type=Path, default=Path("bench/results/real_faces.json"))
    parser.add_argument("--fit-on", default="ckplus48-calib", help="the set temperatures are fitted on")
    parser.add_argument("--bundles", type=Path, nargs="*", default=BUNDLES, help="the models averaged")
    parser.add_argument("--ensemble", type=Path, nargs="*", default=[ENSEMBLE], help="ensemble bundles (none: "
                        "leave them out)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sets = lay_out(args.mirrors, Path(tmp) / "sets")
        if args.fit_on not in sets:
            print(f"error: no set {args.fit_on!r} (found: {', '.join(sets)})", file=sys.stderr)
            return 2
        bundles = calibrated_copies(args.bundles, sets[args.fit_on], Path(tmp) / "bundles")
        ensembles = calibrated_copies(args.ensemble, sets[args.fit_on], Path(tmp) / "ensembles")
        temperatures = {ModelBundle.load(b).spec.name: ModelBundle.load(b).spec.temperature
                        for b in bundles + ensembles}
        members = {e.name: member_temperatures(ModelBundle.load(e), temperatures) for e in ensembles}
        report = {"fit_on": args.fit_on, "temperatures": temperatures, "ensemble_members": members, "sets": {}}
        for name, s in sets.items():
            if name == args.fit_on:
                continue
            result = evaluate_on_faces(bundles, s["folder"], whole_image=s["whole_image"])
            for ensemble in ensembles:
                result["models"] |= evaluate_on_faces([ensemble], s["folder"], whole_image=s["whole_image"],
                                                      average=False)["models"]
            report["sets"][name] = result | {"folder": name}
            print(f"{name} ({result['photos']} photographs{', read whole' if s['whole_image'] else ''}):")
            for model, m in result["models"].items():
                print(_row(model, m) + f"  (no face {m['no_face']}, other label {m['other_label']})")
            if result["average"]:
                print(_row("average", result["average"]))
        pooled = {}
        for model in list(temperatures) + ["average"]:
            results = [r["models"].get(model) if model != "average" else r["average"] for r in report["sets"].values()]
            results = [r for r in results if r]
            correct = sum(r["war"] * r["samples"] for r in results)
            samples = sum(r["samples"] for r in results)
            pooled[model] = {"faces": samples, "correct": int(round(correct)),
                             "mean_set_war": float(np.mean([r["war"] for r in results]))}
        report["pooled"] = pooled
        print("temperatures fitted on", args.fit_on, temperatures)
        print("pooled over the reported sets:", pooled)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
