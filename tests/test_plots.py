"""Figures: written in the requested format, holding the expected artists (not pixels)."""

from pathlib import Path

import numpy as np
import pytest

from capgap.core.errors import InputError
from capgap.laws.base import LawFile, StudentOptimum, law_from_file, save_law
from capgap.plots.pareto import pareto
from capgap.plots.figures import REFERENCE_RATIO, law_figure, pareto_figure, runs_figure
from capgap.runs.store import RunStore
from capgap.runs.synthetic import synthetic_runs

REPO = Path(__file__).resolve().parents[1]
MINIMA = REPO / "data" / "reference" / "minima_family_benchmarks.csv"
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF", "svg": b"<?xml"}
STUDENTS = (20_000_000, 45_000_000, 100_000_000)


def with_gid(ax, gid):
    return [artist for artist in ax.get_children() if artist.get_gid() == gid]


def n_offsets(collections):
    return sum(len(c.get_offsets()) for c in collections)


@pytest.fixture(scope="module")
def runs():
    return synthetic_runs(students=STUDENTS, seed=3)


@pytest.fixture(scope="module")
def law():
    """A ratio law T* = 2.0·S with bootstrap draws, two measured optima and one censored."""
    optima = [StudentOptimum(student_params=20_000_000, teacher_params=5.0e7, low=4.0e7, high=6.0e7, teachers=[]),
              StudentOptimum(student_params=45_000_000, teacher_params=1.1e8, low=9.0e7, high=1.3e8, teachers=[]),
              StudentOptimum(student_params=100_000_000, teacher_params=6.4e8, censored="at_least", teachers=[])]
    draws = [{"r": r} for r in np.linspace(1.6, 2.4, 21)]
    return law_from_file(LawFile(law="ratio", coefficients={"r": 2.0}, samples=draws, optima=optima,
                                 student_range=[2e7, 1e8], n_runs=24))


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_pareto_figure_written_in_each_format(tmp_path, fmt):
    path = tmp_path / f"frontier.{fmt}"
    pareto_figure(pareto(MINIMA), path)
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(MAGIC[fmt])
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed away


def test_pareto_figure_holds_every_point_its_names_and_the_frontier_steps():
    result = pareto(MINIMA)
    ax = pareto_figure(result).axes[0]
    assert n_offsets(with_gid(ax, "point")) == len(result.points)
    # only the frontier's points are named
    assert sorted(t.get_text() for t in with_gid(ax, "name")) == sorted(p.name for p in result.points if p.on_frontier)
    (frontier,) = with_gid(ax, "frontier")
    assert frontier.get_drawstyle() == "steps-post"
    on_frontier = sorted((p.compute, p.performance) for p in result.points if p.on_frontier)
    assert list(zip(frontier.get_xdata(), frontier.get_ydata())) == on_frontier
    assert ax.get_xscale() == "log" and "FLOPs" in ax.get_xlabel() and ax.get_title()
    # bubble area grows with size: the 7B bubble is 7/1.8 of Qwen-1.8B's
    sized = [c for c in with_gid(ax, "point") if len(c.get_sizes()) > 1][0]
    areas = dict(zip([tuple(o) for o in sized.get_offsets()], sized.get_sizes()))
    by_name = {p.name: areas[(p.compute, p.performance)] for p in result.points if p.size}
    assert by_name["LLaMA-2-7B"] / by_name["Qwen-1.8B"] == pytest.approx(7 / 1.8)


def test_pareto_figure_of_a_single_point(tmp_path):
    table = tmp_path / "one.csv"
    table.write_text("model,flops,score_acc\nOnly-1B,1e20,50\n")
    result = pareto(table)
    assert result.frontier == ["Only-1B"]
    ax = pareto_figure(result, tmp_path / "one.png").axes[0]
    assert n_offsets(with_gid(ax, "point")) == 1 and len(with_gid(ax, "name")) == 1
    assert (tmp_path / "one.png").read_bytes().startswith(MAGIC["png"])


def test_runs_figure_one_point_per_run_at_its_ratio(tmp_path, runs):
    path = tmp_path / "runs.png"
    ax = runs_figure(runs, path=path).axes[0]
    lines = with_gid(ax, "run")
    assert len(lines) == len(STUDENTS)  # one line per student size
    xs = sorted(x for line in lines for x in line.get_xdata())
    assert xs == pytest.approx(sorted(r.teacher_params / r.student_params for r in runs))
    assert len({line.get_color() for line in lines}) == len(STUDENTS)  # coloured by student size
    assert path.read_bytes().startswith(MAGIC["png"])


def test_runs_figure_joins_students_pruned_to_one_target_and_splits_inits():
    # pruning to one target from different teachers leaves a few parameters' difference
    from capgap.runs.records import RunRecord

    runs = [RunRecord(student_params=s, teacher_params=t, student_init=init, metrics={"eval_loss": loss})
            for s, t, loss in ((55_966, 173_824, 5.6), (56_002, 123_840, 5.7), (56_024, 940_800, 5.8))
            for init in ("pruned", "scratch")]
    lines = with_gid(runs_figure(runs).axes[0], "run")
    assert len(lines) == 2 and {line.get_linestyle() for line in lines} == {"-", "--"}
    assert all(len(line.get_xdata()) == 3 for line in lines)
    assert len({line.get_color() for line in lines}) == 1  # one student size, one colour


def test_law_figure_right_panel(runs, law):
    right = law_figure(law, runs).axes[1]
    # right: optima with intervals, the censored one as a marker and an arrow, the law and its band
    assert len(with_gid(right, "optimum")) == 2
    assert len([a for a in with_gid(right, "censored") if hasattr(a, "arrow_patch")]) == 1
    (line,) = with_gid(right, "law")
    assert np.allclose(line.get_ydata() / line.get_xdata(), 2.0)
    (reference,) = with_gid(right, "reference")
    assert np.allclose(reference.get_ydata() / reference.get_xdata(), REFERENCE_RATIO)
    assert reference.get_zorder() > line.get_zorder()  # a law near 2.5·S does not hide the reference
    (band,) = with_gid(right, "band")
    low, high = band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()
    assert low < line.get_ydata().min() and high > line.get_ydata().max()
    assert right.get_xscale() == right.get_yscale() == "log"


@pytest.fixture(scope="module")
def fitted():
    """A ratio law fitted on pruned runs, and those runs with scratch ones beside them."""
    from capgap.fit.law_fit import fit_law

    pruned = synthetic_runs(students=STUDENTS, seed=3, repeats=2)
    scratch = synthetic_runs(students=STUDENTS, seed=4, student_init="scratch")
    return fit_law(pruned + scratch, law="ratio", bootstrap=50, student_init="pruned"), pruned, scratch


def _renderer(figure):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def _outside(figure, legend, ax):
    renderer = _renderer(figure)
    return legend.get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1


def test_law_figure_draws_each_groups_fitted_curve_through_its_runs(fitted):
    law, pruned, scratch = fitted
    figure = law_figure(law, pruned + scratch)
    left = figure.axes[0]
    # only the runs the law was fitted on: the pruned ones, each seed a point
    assert n_offsets(with_gid(left, "measured")) == len(pruned) == law.file.n_runs
    assert with_gid(left, "other_runs") == []
    assert f"drawn: {len(pruned)} runs in {len(STUDENTS)} groups" in figure._suptitle.get_text()
    curves, means = with_gid(left, "curve"), with_gid(left, "mean")
    assert len(curves) == len(means) == len(STUDENTS)
    for curve, mean in zip(curves, means):  # the fitted curve passes through the seeds' means
        predicted = np.interp(np.log(mean.get_xdata()), np.log(curve.get_xdata()), curve.get_ydata())
        assert np.max(np.abs(predicted - mean.get_ydata())) < 0.02
    # each optimum sits on its curve, at the curve's lowest point, with its interval
    stars = with_gid(left, "optimum")
    assert len(stars) == len([o for o in law.file.optima if not o.censored]) > 0
    for star in stars:
        x, y = star.get_xdata()[0], star.get_ydata()[0]
        curve = min(curves, key=lambda c: abs(np.interp(np.log(x), np.log(c.get_xdata()), c.get_ydata()) - y))
        assert y == pytest.approx(np.interp(np.log(x), np.log(curve.get_xdata()), curve.get_ydata()))
        assert y <= curve.get_ydata().min() + 0.002
    assert all(_outside(figure, ax.get_legend(), ax) for ax in figure.axes[:2])


def test_law_figure_all_runs_fades_the_others(fitted):
    law, pruned, scratch = fitted
    figure = law_figure(law, pruned + scratch, all_runs=True)
    left = figure.axes[0]
    (faded,) = with_gid(left, "other_runs")
    assert len(faded.get_offsets()) == len(scratch) and faded.get_alpha() < 0.5
    assert n_offsets(with_gid(left, "measured")) == len(pruned)
    assert f"+{len(scratch)} other runs faded" in figure._suptitle.get_text()


def test_law_figure_without_runs_says_so(law):
    left = law_figure(law).axes[0]
    assert with_gid(left, "measured") == []
    assert any("--runs" in t.get_text() for t in left.texts)


def test_reference_law_draws_its_own_curve_and_says_it_has_no_runs():
    from capgap.laws.files import resolve_law

    figure = law_figure(resolve_law("default")[0])
    left, right = figure.axes[:2]
    assert any("no runs" in t.get_text() for t in left.texts) and "no runs" in figure._suptitle.get_text()
    (line,), (reference,) = with_gid(right, "law"), with_gid(right, "reference")
    assert len(line.get_xdata()) > 10 and reference.get_zorder() > line.get_zorder()


def test_bad_figure_path_is_refused_before_anything_is_written(tmp_path, runs):
    with pytest.raises(InputError, match="not supported"):
        runs_figure(runs, path=tmp_path / "runs.jpg")
    with pytest.raises(InputError, match="folder"):
        runs_figure(runs, path=tmp_path / "missing" / "runs.png")
    assert list(tmp_path.iterdir()) == []


def test_cli_plot_law_and_runs(tmp_path, runs, law, run_cli):
    store = tmp_path / "runs.jsonl"
    RunStore(store).extend(runs)
    law_path = tmp_path / "law.json"
    save_law(law, law_path)
    done = run_cli("plot", "law", law_path, "--runs", store, "--out", tmp_path / "law.pdf")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "law.pdf").read_bytes().startswith(MAGIC["pdf"])
    done = run_cli("plot", "runs", store, "--out", tmp_path / "runs.svg")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs.svg").read_bytes().startswith(MAGIC["svg"])
    done = run_cli("plot", "runs", store, "--out", tmp_path / "runs.gif")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and ".png" in done.stderr


def test_run_store_pareto_names_frontier_runs_by_model_and_no_labels_overlap():
    from matplotlib.text import Text

    result = pareto(REPO / "data" / "runs" / "shakespeare-study.jsonl")
    figure = pareto_figure(result)
    ax = figure.axes[0]
    names = with_gid(ax, "name")
    assert len(names) == len(result.frontier) < len(result.points)
    assert all("<- gpt2-L2-d" in n.get_text() and "#" not in n.get_text() for n in names)
    renderer = _renderer(figure)
    boxes = []
    for note in names:
        note.update_positions(renderer)
        boxes.append(Text.get_window_extent(note, renderer))
    frame = ax.get_window_extent(renderer)
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)


def test_a_student_answered_by_a_bound_is_drawn_at_its_bound_and_the_law_line_leaves_a_gap(runs):
    # One ladder ending at 2.1B: the 1B student's optimum (2.5B) lies past it, so its answer is a bound. The marker
    # stands at the bound (the answer, here widened as the check against dsl widens it), not at the law's point,
    # and the law's line is no point where its answers are bounds.
    from capgap.fit.law_fit import fit_law

    ladder = [int(x) for x in np.geomspace(1.2e7, 2.1e9, 24)]
    fitted = fit_law(synthetic_runs(ratio=2.5, students=[1e7, 3e7, 1e8, 3e8, 1e9], teachers=ladder,
                                    with_teacher_loss=False, noise=0.003, seed=3), law="ratio", bootstrap=100, seed=1)
    widened = fitted.file.model_copy(update={"optima": [
        o.model_copy(update={"model_low": 1.5e9, "low": 1.5e9}) if o.censored else o for o in fitted.file.optima]})
    right = law_figure(type(fitted)(widened)).axes[1]
    (marker,) = [a for a in with_gid(right, "censored") if hasattr(a, "get_offsets")]
    assert marker.get_offsets()[0][1] == pytest.approx(1.5e9)
    (line,) = with_gid(right, "law")
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata(), dtype=float)
    near = (x > 0.9e9) & (x < 1.0e9)  # inside the fitted range, past the ladder
    assert near.any() and np.isnan(y[near]).all() and np.isfinite(y[x < 3e8]).all()
