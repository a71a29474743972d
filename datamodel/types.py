"""The building blocks of the data model: columns, tables, foreign keys.

Every other part of the archive (SQL tables, TAP_SCHEMA, VOTable FIELDs, the web
form, cone search, ingest validation) is derived from these declarations.
"""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Field", "Column", "Table", "ForeignKey", "VERB_MINIMAL", "VERB_STANDARD", "VERB_FULL",
           "DATATYPES"]

#: Verbosity levels; SCS VERB=1/2/3 selects the columns with ``verbosity <= VERB``.
VERB_MINIMAL, VERB_STANDARD, VERB_FULL = 1, 2, 3

#: VOTable datatypes the model uses.
DATATYPES = ("boolean", "short", "int", "long", "float", "double", "char")


@dataclass(frozen=True)
class Field:
    """What describes a column of values wherever it appears: in the database, in
    TAP_SCHEMA, as a VOTable FIELD or a FITS column. Published columns
    (``Column``) and the columns of a query result (``archive.result.ResultColumn``)
    are both Fields, so the two cannot drift apart.
    """

    name: str
    datatype: str                  # VOTable datatype
    description: str | None = None
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    arraysize: str | None = None   # VOTable arraysize for char columns: "10", "*", "32*"
    xtype: str | None = None


@dataclass(frozen=True)
class Column(Field):
    """One published column.

    ``name`` is the column name in the database, in ADQL and in every output format
    (lower case, a regular ADQL identifier, never a reserved word). ``source_names``
    are the names the column may carry in input files (case-insensitive), the
    first being the EXTraS/3XMM original.
    """

    verbosity: int = VERB_STANDARD
    required: bool = False          # NOT NULL; ingest rejects missing values
    role: str | None = None         # "id", "ra" or "dec": the principal columns
    indexed: bool = False
    std: bool = False               # defined by an IVOA standard (TAP_SCHEMA.columns.std)
    minimum: float | None = None    # inclusive bounds checked at ingest
    maximum: float | None = None
    maximum_exclusive: bool = False
    source_names: tuple[str, ...] = ()
    #: an enumeration: the only values the column may hold (text columns). Ingest
    #: refuses others; the search form offers them as a choice list.
    choices: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.description:
            raise ValueError(f"column {self.name}: a published column needs a description")
        if self.datatype not in DATATYPES:
            raise ValueError(f"column {self.name}: unknown datatype {self.datatype!r}")
        if self.datatype == "char" and not self.arraysize:
            object.__setattr__(self, "arraysize", "*")
        if self.choices and (self.datatype != "char" or len(set(
                c.upper() for c in self.choices)) != len(self.choices)):
            raise ValueError(f"column {self.name}: choices are distinct text values of "
                             f"a char column")
        if self.role not in (None, "id", "ra", "dec"):
            raise ValueError(f"column {self.name}: unknown role {self.role!r}")

    @property
    def principal(self) -> bool:
        return self.verbosity == VERB_MINIMAL

    @property
    def input_names(self) -> tuple[str, ...]:
        """Names accepted for this column in an input file, upper-cased."""
        return tuple(dict.fromkeys(n.upper() for n in (self.name, *self.source_names)))


@dataclass(frozen=True)
class ForeignKey:
    """A link from columns of one table to the key of another (TAP_SCHEMA.keys)."""

    columns: tuple[str, ...]
    target: str                   # target table short name
    target_columns: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class Table:
    """One published table.

    ``name`` is the physical table name in the database; ``qualified_name`` is the
    name in ADQL and TAP_SCHEMA (``schema.name``). ``key`` lists the columns that
    identify a row (unique, used for idempotent ingest). ``id_template`` builds
    the value of the ``role="id"`` column from the other columns when an input file
    does not carry it.
    """

    name: str
    schema: str
    title: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    catalogue: str = ""           # the catalogue this table belongs to (several tables may)
    id_template: str | None = None
    foreign_keys: tuple[ForeignKey, ...] = ()
    utype: str | None = None
    positional: bool = field(init=False)

    def __post_init__(self):
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: duplicate column names")
        for k in self.key:
            if k not in names:
                raise ValueError(f"table {self.name}: key column {k} not declared")
        roles = [c.role for c in self.columns if c.role]
        if len(set(roles)) != len(roles):
            raise ValueError(f"table {self.name}: a role is declared twice")
        object.__setattr__(self, "positional", "ra" in roles and "dec" in roles)
        if not self.catalogue:
            object.__setattr__(self, "catalogue", self.name)

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name.lower():
                return c
        raise KeyError(name)

    def role_column(self, role: str) -> Column | None:
        for c in self.columns:
            if c.role == role:
                return c
        return None

    def columns_for_verbosity(self, verb: int) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.verbosity <= verb)
