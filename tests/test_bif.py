import numpy as np
import pytest

from bnbench.networks import BIFError, parse_bif, read_bif

CANONICAL = """network test {
}
variable rain {
  type discrete [ 2 ] { no, yes };
}
variable sprinkler {
  type discrete [ 2 ] { off, on };
}
variable wet {
  type discrete [ 3 ] { dry, damp, soaked };
}
probability ( rain ) {
  table 0.8, 0.2;
}
probability ( sprinkler | rain ) {
  (no) 0.6, 0.4;
  (yes) 0.99, 0.01;
}
probability ( wet | rain, sprinkler ) {
  (no, off) 1.0, 0.0, 0.0;
  (no, on) 0.1, 0.3, 0.6;
  (yes, off) 0.2, 0.5, 0.3;
  (yes, on) 0.01, 0.09, 0.9;
}
"""

# The same network with the rows of each conditional table listed in another order.
SHUFFLED = """network test {
}
variable rain {
  type discrete [ 2 ] { no, yes };
}
variable sprinkler {
  type discrete [ 2 ] { off, on };
}
variable wet {
  type discrete [ 3 ] { dry, damp, soaked };
}
probability ( wet | rain, sprinkler ) {
  (yes, on) 0.01, 0.09, 0.9;
  (no, on) 0.1, 0.3, 0.6;
  (yes, off) 0.2, 0.5, 0.3;
  (no, off) 1.0, 0.0, 0.0;
}
probability ( sprinkler | rain ) {
  (yes) 0.99, 0.01;
  (no) 0.6, 0.4;
}
probability ( rain ) {
  table 0.8, 0.2;
}
"""


def test_tables_follow_labels():
    network = parse_bif(CANONICAL, name="test")
    wet = network.cpt("wet")
    assert wet.shape == (2, 2, 3)
    # rain = yes (1), sprinkler = off (0)
    assert wet[1, 0].tolist() == [0.2, 0.5, 0.3]
    assert network.cpt("sprinkler")[1].tolist() == [0.99, 0.01]
    assert network.structure.state_names[2] == ("dry", "damp", "soaked")


def test_row_order_in_file_does_not_matter():
    canonical = parse_bif(CANONICAL, name="test")
    shuffled = parse_bif(SHUFFLED, name="test")
    assert canonical.structure.variables == shuffled.structure.variables
    for a, b in zip(canonical.cpts, shuffled.cpts):
        assert np.array_equal(a, b)


def test_read_bif_from_file(tmp_path):
    path = tmp_path / "sprinkler.bif"
    path.write_text(CANONICAL)
    network = read_bif(path)
    assert network.name == "sprinkler"
    assert network.cpt("rain").tolist() == [0.8, 0.2]


def test_missing_file_is_named(tmp_path):
    with pytest.raises(BIFError, match="not found"):
        read_bif(tmp_path / "absent.bif")


def test_text_without_blocks_is_rejected():
    with pytest.raises(BIFError, match="no 'variable' and 'probability' blocks"):
        parse_bif("hello world", name="junk")


def test_row_with_undeclared_label_is_rejected():
    text = CANONICAL.replace("(yes, on) 0.01, 0.09, 0.9;", "(yes, maybe) 0.01, 0.09, 0.9;")
    with pytest.raises(BIFError):
        parse_bif(text, name="bad")


def test_missing_row_is_rejected_naming_the_configuration():
    text = CANONICAL.replace("  (yes, on) 0.01, 0.09, 0.9;\n", "")
    with pytest.raises(ValueError, match=r"table of 'wet'.*rain=yes, sprinkler=on sums to 0"):
        parse_bif(text, name="incomplete")


def test_cyclic_bif_is_rejected():
    text = CANONICAL.replace("probability ( rain ) {\n  table 0.8, 0.2;", "probability ( rain | wet ) {\n  (dry) 0.8, 0.2;\n  (damp) 0.8, 0.2;\n  (soaked) 0.8, 0.2;")
    with pytest.raises(ValueError, match="directed cycle"):
        parse_bif(text, name="cyclic")
