"""Exports of the reporting tables: CSV and XLSX files, and the printable monthly report."""
