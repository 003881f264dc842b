"""Read BIF files through pgmpy's parser, placing table entries by state and parent labels."""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import numpy as np

from bnbench.network import BayesianNetwork
from bnbench.structure import Structure

logger = logging.getLogger(__name__)


class BIFError(ValueError):
    """Raised when a BIF file cannot be read or does not describe a valid network."""


def read_bif(path: str | os.PathLike[str], name: str | None = None) -> BayesianNetwork:
    """Load a BIF file (plain or ``.gz``) as a `BayesianNetwork`.

    pgmpy's reader maps each row's parent labels to its column, so a file that lists
    the rows of a table in any order loads to the same tables. Variables are sorted
    topologically, keeping the file's declaration order where the graph allows.
    """
    path = Path(path)
    text = _read_text(path)
    return parse_bif(text, name=name or path.name.split(".")[0], source=str(path))


def read_bif_tables(path: str | os.PathLike[str], name: str) -> tuple[Structure, dict[str, np.ndarray]]:
    """Like `read_bif`, but return the structure and the tables as written in the file."""
    return parse_bif_tables(_read_text(Path(path)), name=name, source=str(path))


def parse_bif(text: str, name: str, source: str = "<string>") -> BayesianNetwork:
    """Parse BIF text into a `BayesianNetwork`; ``source`` names the text in error messages."""
    structure, tables = parse_bif_tables(text, name, source)
    return BayesianNetwork(structure, tables)


def parse_bif_tables(text: str, name: str, source: str = "<string>") -> tuple[Structure, dict[str, np.ndarray]]:
    """Parse BIF text into a structure and its tables as written (not yet validated or renormalized)."""
    from pgmpy.readwrite import BIFReader

    if "probability" not in text or "variable" not in text:
        raise BIFError(f"{source}: no 'variable' and 'probability' blocks found; is this a BIF file?")
    try:
        reader = BIFReader(string=text)
    except Exception as error:  # pgmpy raises assorted parser and pandas errors
        raise BIFError(f"{source}: pgmpy's BIF parser failed: {type(error).__name__}: {error}") from error

    states = {v: list(s) for v, s in reader.variable_states.items()}
    declared_parents = {v: list(reader.variable_parents.get(v, [])) for v in reader.variable_names}
    without_table = [v for v in reader.variable_names if v not in reader.variable_cpds]
    if without_table:
        raise BIFError(f"{source}: variables {without_table} have no probability block; add one for each")

    structure = Structure.from_parents(name, declared_parents, states)
    tables = {}
    for variable in structure.variables:
        # pgmpy stores (card, prod(parent cards)) with parent columns in C order over the
        # declared parents, which is bnbench's layout once transposed.
        values = np.asarray(reader.variable_cpds[variable], dtype=np.float64)
        parent_cards = [len(states[p]) for p in declared_parents[variable]]
        expected = (len(states[variable]), int(np.prod(parent_cards)))
        if values.shape != expected:
            raise BIFError(
                f"{source}: table of {variable!r} has {values.size} entries; expected {expected[0]} x {expected[1]} "
                f"for its states and parents {declared_parents[variable]}"
            )
        if np.isnan(values).any():
            raise BIFError(
                f"{source}: table of {variable!r} has rows with state labels that are not declared; "
                "check the labels in its probability block against the variable declarations"
            )
        tables[variable] = values.T.reshape(*parent_cards, len(states[variable]))
    return structure, tables


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise BIFError(f"BIF file {str(path)!r} not found; give the path of an existing .bif or .bif.gz file")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise BIFError(f"cannot read BIF file {str(path)!r}: {error}") from error
