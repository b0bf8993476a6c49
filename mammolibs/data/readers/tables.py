"""Tabular metadata as sources publish it (CSV with any delimiter, XLSX, legacy XLS) and BI-RADS labels."""

from __future__ import annotations

import csv
import io
import re

from mammolibs.data.images import read_file_bytes

TABLE_SUFFIXES = (".csv", ".xlsx", ".xls")


def read_table(url: str) -> list[dict[str, str]]:
    """Rows of a ``.csv`` (comma, semicolon or tab), ``.xlsx`` or ``.xls`` (first sheet) as dicts of
    strings, header names stripped; empty rows are dropped."""
    data = read_file_bytes(url)
    if url.lower().endswith(".xlsx"):
        rows = _xlsx_rows(data)
    elif url.lower().endswith(".xls"):
        rows = _xls_rows(data)
    else:
        text = data.decode("utf-8-sig")
        try:
            dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
        except csv.Error:  # too few rows, or quoted cells that confuse the sniffer: the comma of CSV
            dialect = csv.excel
        rows = list(csv.reader(io.StringIO(text), dialect))
    if not rows:
        raise ValueError(f"{url}: the table is empty")
    header = [str(h).strip() for h in rows[0]]
    table = [{h: ("" if v is None else str(v).strip()) for h, v in zip(header, row)} for row in rows[1:]]
    return [row for row in table if any(row.values())]


def _xlsx_rows(data: bytes) -> list[list]:
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(data), read_only=True, data_only=True).worksheets[0]
    return [[_cell(v) for v in row] for row in sheet.iter_rows(values_only=True)]


def _xls_rows(data: bytes) -> list[list]:
    import xlrd

    sheet = xlrd.open_workbook(file_contents=data).sheet_by_index(0)
    return [[_cell(v) for v in sheet.row_values(i)] for i in range(sheet.nrows)]


def _cell(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def column(row: dict[str, str], *names: str, table: str = "") -> str:
    """The value of the first of ``names`` present in ``row`` (sources rename columns between releases)."""
    for name in names:
        if name in row:
            return row[name]
    raise ValueError(f"{table}: none of the columns {names} found; columns are {sorted(row)}")


def birads_label(value: str) -> str:
    """BI-RADS assessment to a label: 1 normal, 2-3 benign, 4-6 malignant (suspicious or proven),
    0 or missing unknown. Accepts ``4``, ``4a``, ``BI-RADS 4``, ``BIRADS_4C``."""
    match = re.search(r"([0-6])\s*[abc]?\s*$", value.strip().lower())
    if not match:
        return "unknown"
    category = int(match.group(1))
    return {0: "unknown", 1: "normal", 2: "benign", 3: "benign"}.get(category, "malignant")
