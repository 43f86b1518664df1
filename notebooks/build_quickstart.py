"""Write notebooks/quickstart.ipynb from the cells below (run: python notebooks/build_quickstart.py).

``--execute`` also runs it (nbclient, kernel python3) and keeps the outputs, so
the notebook reads well on GitHub. Edit the cells here, not the .ipynb.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE / "quickstart.ipynb"

CELLS = [
    ("md", """# capgap quickstart: how large should the teacher be?

This notebook covers four things:

1. ask for a recommendation,
2. refit the law of capacity gap from the shipped runs,
3. draw a compute-versus-performance Pareto frontier,
4. plot the law against its runs.

It uses only data shipped in `data/` and runs top to bottom on a CPU in under a
minute. Each step is also a `capgap` command, given beside it."""),
    ("code", """%matplotlib inline
from pathlib import Path

import capgap
from capgap.fit.law_fit import fit_law
from capgap.plots.pareto import pareto
from capgap.plots.figures import law_figure, pareto_figure
from capgap.recommender.answer import recommend
from capgap.sizes.units import format_size

from capgap.core.resources import data_root

DATA = data_root()  # the shipped data: inside the installed package, or the checkout's data/"""),
    ("md", """## 1. Which teacher for a 1.3B student?

`capgap recommend --student 1.3B` consults both published laws side by side:
Zhang et al. (students pruned from their teacher, T* ≈ 2.5·S; the headline for
the default `init="pruned"`) and Busbridge et al. (students from scratch; the
best teacher depends on the student's tokens per parameter). Each answer says
whether the student lies inside its law's regime, and each is snapped to the
nearest real models of a ladder (Pythia here). `law="cpu-demo"` gives the law
fitted on capgap's own tiny CPU runs, a pipeline demonstration."""),
    ("code", """rec = recommend("1.3B", ladder="pythia")
print(f"optimal teacher: {format_size(rec.teacher_params)} ({rec.teacher_params / rec.student_params:.2f}x the student)")
for warning in rec.warnings:
    print("warning:", warning)
for answer in rec.by_law:
    print(f"{answer.law.label}: teacher {format_size(answer.teacher_params)} "
          f"({answer.teacher_params / answer.student_params:.2f}x), applies: {answer.applies.inside}")
for model in rec.nearest:
    print(f"  {model.name:<12} {format_size(model.params):>6}  {model.ratio:.2f}x the student")
print("preferred:", rec.preferred, "-", rec.preferred_reason)"""),
    ("md", """## 2. Refit the law from the measured runs

`capgap fit RUNS --out LAW.json` does this step. Here we fit the `ratio`
family, T* = r·S, the paper's linear law through the origin.
`fit_law(runs, law="auto")` compares every family by cross-validation, but it
is much slower.

The measured runs are in `data/runs/shakespeare-study.jsonl`: 5 tiny GPT2
teachers trained on the shipped Shakespeare corpus (held-out loss falling
strictly with size), students of 4 target sizes, 2 seeds. Each student was
either pruned from every larger teacher or started from scratch. We keep the
pruned students (`student_init="pruned"`, the `--init pruned` flag), as in the
paper's protocol: the scratch students barely moved in 252k tokens. This is
the documented command behind the shipped `cpu-demo` law.

Tiny CPU models make this a demonstration of the pipeline, not evidence for or
against 2.5·S. If the measured runs give no law, the cell says so and falls
back to synthetic runs with a planted optimum T* = 2.5·S (`capgap.runs.synthetic`).
Those show the method, not a measurement."""),
    ("code", """from capgap import InputError, load_runs
from capgap.runs.synthetic import synthetic_runs

measured = DATA / "runs" / "shakespeare-study.jsonl"
runs = [run for run in load_runs(measured) if run.student_init == "pruned"]
try:
    law = fit_law(runs, law="ratio", bootstrap=200)
    source = f"measured pruned-student runs ({measured.name})"
except InputError as problem:
    print(f"the measured runs give no law: {problem}")
    runs = synthetic_runs(ratio=2.5, seed=0)
    law = fit_law(runs, law="ratio", bootstrap=200)
    source = "synthetic runs (planted T* = 2.5·S)"
print(f"fitted the {law.name!r} law on {law.file.n_runs} {source}")
interval = law.file.intervals.get("r")
print("coefficients:", {k: round(v, 3) for k, v in law.file.coefficients.items()},
      "90% interval of r:", [round(x, 2) for x in interval] if interval else "no interval")
for warning in law.file.diagnostics.warnings:  # what the fit cannot support, first
    print("  warning:", warning)
for optimum in law.file.optima:  # read off the fitted law, not fitted one by one
    state = f"beyond its ladder ({optimum.censored})" if optimum.censored else "inside its ladder"
    print(f"  student {format_size(optimum.student_params)}: best teacher {format_size(optimum.teacher_params)} ({state})")
for student in law.file.student_range:
    estimate = law.optimal_teacher(student)
    interval = f"{format_size(estimate.low)}-{format_size(estimate.high)}" if estimate.low else "no interval"
    print(f"  law at {format_size(student)}: teacher {format_size(estimate.estimate)} (90% {interval})")"""),
    ("md", """## 3. A Pareto frontier: the MiniMA comparison table

`capgap pareto data/reference/minima_family_benchmarks.csv --out frontier.png`
makes this figure. Compute is the table's training compute (TFLOPs, converted
to FLOPs). Performance is the unweighted mean of its six benchmarks. A model is
on the frontier when no other model has less-or-equal compute and a
better-or-equal mean, at least one of them strictly. Each model's size is read
from its name, and the bubble area follows it."""),
    ("code", """frontier = pareto(DATA / "reference" / "minima_family_benchmarks.csv")
for point in sorted(frontier.points, key=lambda p: p.compute):
    if point.on_frontier:
        print(f"  {point.name:<18} {point.compute:9.2e} FLOPs  mean score {point.performance:.2f}")
pareto_figure(frontier)"""),
    ("md", """## 4. The law against its runs

`capgap plot law LAW.json --runs RUNS --out law.png` makes this figure.

- Left panel: student loss against teacher size, one curve per student size.
  A star marks each student's optimum as the fitted law places it, with its
  interval. An arrow marks an optimum its teacher ladder did not bracket.
- Right panel: optimal teacher against student size. It shows the fitted law,
  its 90% band, and the reference line T* = 2.5·S."""),
    ("code", """law_figure(law, runs)"""),
]


def build() -> nbformat.NotebookNode:
    cells = [new_markdown_cell(text) if kind == "md" else new_code_cell(text) for kind, text in CELLS]
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def execute(notebook: nbformat.NotebookNode, timeout: int = 300) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(HERE)}}).execute()
    return notebook


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execute", action="store_true", help="run it and keep the outputs")
    args = parser.parse_args()
    notebook = build()
    if args.execute:
        execute(notebook)
    nbformat.write(notebook, NOTEBOOK)
    print(f"wrote {NOTEBOOK}")


if __name__ == "__main__":
    main()
