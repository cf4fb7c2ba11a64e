"""What ``krepes reproduce`` lets reach the book from the executed notebooks."""
import nbformat

from krepes_lib import cli

WIDGET = "application/vnd.jupyter.widget-view+json"


def _nb(path, *outputs):
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.outputs = list(outputs)
    nb = nbformat.v4.new_notebook(cells=[cell])
    nbformat.write(nb, path)


def test_warnings_widgets_and_errors_are_refused_run_warnings_are_listed(tmp_path):
    stream = nbformat.v4.new_output
    _nb(tmp_path / "a.ipynb", stream("stream", name="stderr", text="/x/tqdm/auto.py:21: TqdmWarning: IProgress not found.\n"))
    _nb(tmp_path / "b.ipynb", stream("stream", name="stderr",
                                     text="/x/krepes_lib/audit.py:9: ConvergenceWarning: audit: CG stopped at its cap\n  a = f()\n"))
    _nb(tmp_path / "c.ipynb", stream("display_data", data={WIDGET: {"model_id": "m"}, "text/plain": "0%"}))
    _nb(tmp_path / "d.ipynb", stream("error", ename="ValueError", evalue="x", traceback=[]))
    _nb(tmp_path / "e.ipynb", stream("stream", name="stdout", text="all fine\n"))
    _nb(tmp_path / "f.ipynb", stream("stream", name="stderr",
                                     text="/x/krepes_lib/stats.py:3: RuntimeWarning: divide by zero encountered\n"))
    _nb(tmp_path / "a.failed.ipynb", stream("error", ename="ValueError", evalue="x", traceback=[]))
    bad, notices = cli.unfit_outputs(tmp_path)
    assert [b.split()[0] for b in bad] == ["a.ipynb", "c.ipynb", "d.ipynb", "f.ipynb"], bad
    assert [n.split()[0] for n in notices] == ["b.ipynb"], notices


def test_widget_outputs_and_state_are_dropped():
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("display_data", data={WIDGET: {"model_id": "m"}, "text/plain": "0%"}),
                    nbformat.v4.new_output("stream", name="stdout", text="kept\n")]
    nb = nbformat.v4.new_notebook(cells=[cell], metadata={"widgets": {"state": {}}})
    cli.drop_widget_outputs(nb)
    assert [o.get("text") for o in nb.cells[0].outputs] == ["kept\n"] and "widgets" not in nb.metadata
