import numpy as np
import pandas as pd
import pytest

from steelinspect.constants import CLASS_COLOURS
from steelinspect.draw.overlay import (
    black_background_masks,
    colour_hex,
    legend_strip,
    overlay_masks,
    save_rgb,
    stacked_view,
    with_legend,
)
from steelinspect.eda.report import HtmlReport


def _masks():
    masks = np.zeros((4, 20, 30), bool)
    masks[3, 2:10, 2:10] = True  # class 4
    masks[0, 12:18, 15:25] = True  # class 1
    return masks


def test_overlay_fill_and_outline_colours():
    gray = np.full((20, 30), 100, np.uint8)
    masks = _masks()
    fill = overlay_masks(gray, masks, outline=False, alpha=0.5)
    assert fill.dtype == np.uint8 and fill.shape == (20, 30, 3)
    assert tuple(fill[0, 0]) == (100, 100, 100)  # outside every mask: untouched grey
    expected = np.round(0.5 * 100 + 0.5 * np.array(CLASS_COLOURS[4]))
    np.testing.assert_allclose(fill[5, 5], expected, atol=1)
    outlined = overlay_masks(gray, masks, alpha=0.0, thickness=1)
    assert tuple(outlined[2, 5]) == CLASS_COLOURS[4]  # the mask's edge
    assert tuple(outlined[5, 5]) == (100, 100, 100)  # alpha 0: inside stays grey
    only_1 = overlay_masks(gray, masks, classes=[1], alpha=0.5)
    assert tuple(only_1[5, 5]) == (100, 100, 100) and tuple(only_1[15, 20]) != (100, 100, 100)
    assert (gray == 100).all()  # the input is not modified


def test_overlay_rejects_bad_inputs():
    gray = np.zeros((20, 30), np.uint8)
    with pytest.raises(ValueError, match="masks must be"):
        overlay_masks(gray, _masks()[:3])
    with pytest.raises(ValueError, match="differ in size"):
        overlay_masks(gray[:10], _masks())
    with pytest.raises(ValueError, match="outside"):
        overlay_masks(gray, _masks(), classes=[5])
    with pytest.raises(ValueError, match="uint8"):
        overlay_masks(gray.astype(np.float32), _masks())


def test_black_background_stacked_and_legend(tmp_path):
    masks = _masks()
    black = black_background_masks(masks)
    assert tuple(black[0, 0]) == (0, 0, 0) and tuple(black[5, 5]) == CLASS_COLOURS[4]
    assert tuple(black[15, 20]) == CLASS_COLOURS[1]
    stacked = stacked_view(np.zeros((20, 30), np.uint8), masks, gap=4)
    assert stacked.shape == (44, 30, 3) and (stacked[20:24] == 255).all()
    strip = legend_strip(400)
    for c in CLASS_COLOURS:
        assert np.all(strip == CLASS_COLOURS[c], axis=2).any()
    assert with_legend(black).shape == (20 + 28, 30, 3)
    assert colour_hex(4) == "#%02x%02x%02x" % CLASS_COLOURS[4]
    path = save_rgb(tmp_path / "o.png", black)
    import cv2

    assert (cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) == black).all()


def test_html_report_builder(tmp_path):
    png = save_rgb(tmp_path / "p.png", np.zeros((4, 4, 3), np.uint8))
    frame = pd.DataFrame({"name": ["<b>x</b>", "y"], "value": [0.12345, np.nan]})
    report = HtmlReport("Run <1>").heading("Counts").paragraph("a & b").table(frame).image(png, "cap")
    report.heading("Counts").image(None)
    path = report.write(tmp_path / "r.html")
    html = path.read_text()
    assert "<title>Run &lt;1&gt;</title>" in html and "a &amp; b" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "0.123" in html and "–" in html
    assert 'id="counts"' in html and 'id="counts-2"' in html and 'href="#counts-2"' in html
    assert html.count("data:image/png;base64,") == 1 and "<figcaption>cap</figcaption>" in html
