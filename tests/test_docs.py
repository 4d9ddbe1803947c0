"""Docs that are tested: every statement of the grammar is in docs/sql.md, every
config key in config.example.toml (see tests/server/test_config.py), and the
README's test command is the one CI runs."""

from __future__ import annotations

import re
from pathlib import Path

from sqlgrammar import ast

ROOT = Path(__file__).parents[1]

# Where docs/sql.md documents each statement. A new statement class fails the
# first assertion until it is given a place here, and then in the docs.
SECTIONS: dict[type, str] = {
    ast.CreateNamespace: "### CREATE NAMESPACE",
    ast.DropNamespace: "### DROP NAMESPACE",
    ast.ShowNamespaces: "### SHOW NAMESPACES",
    ast.CreateTable: "### CREATE TABLE",
    ast.DropTable: "### DROP TABLE",
    ast.AlterTableAddColumn: "### ALTER TABLE",
    ast.AlterTableDropColumn: "### ALTER TABLE",
    ast.ShowTables: "### SHOW TABLES",
    ast.DescribeTable: "### DESCRIBE TABLE",
    ast.FlushTable: "### FLUSH TABLE",
    ast.FlushAllTables: "FLUSH ALL TABLES IN",
    ast.BackupDatabase: "### BACKUP DATABASE",
    ast.RestoreDatabase: "### RESTORE DATABASE",
    ast.BackupTables: "### BACKUP TABLE",
    ast.BackupDatabases: "### BACKUP DATABASE a, b and BACKUP ALL",
    ast.RestoreAll: "### RESTORE ALL",
    ast.RestoreTable: "### RESTORE TABLE",
    ast.ShowBackups: "### SHOW BACKUPS",
    ast.ShowBackup: "### SHOW BACKUP\n",
    ast.VerifyBackup: "### VERIFY BACKUP",
    ast.DropBackup: "### DROP BACKUP",
    ast.KillJob: "### KILL JOB",
    ast.ShowJobs: "### SHOW JOBS",
    ast.ShowJob: "### SHOW JOB\n",
    ast.PauseJob: "### PAUSE JOB",
    ast.ResumeJob: "### RESUME JOB",
    ast.AttachBackups: "### ATTACH BACKUPS",
    ast.CreateSchedule: "### CREATE SCHEDULE",
    ast.ShowSchedules: "### SHOW SCHEDULES",
    ast.DropSchedule: "### DROP SCHEDULE",
    ast.StartArchiving: "### START ARCHIVING",
    ast.StopArchiving: "### STOP ARCHIVING",
    ast.ShowArchives: "### SHOW ARCHIVES",
    ast.ShowRestorePoints: "### SHOW RESTORE POINTS",
    ast.VerifyArchive: "### VERIFY ARCHIVE",
    ast.Query: "## Rows and queries",
    ast.Explain: "### EXPLAIN",
}


def statement_classes() -> set[type]:
    return {
        cls for cls in vars(ast).values()
        if isinstance(cls, type) and issubclass(cls, ast.Statement) and cls is not ast.Statement
    }


def test_every_statement_has_a_section() -> None:
    assert statement_classes() == set(SECTIONS)
    text = (ROOT / "docs" / "sql.md").read_text()
    missing = [f"{cls.__name__}: {heading!r}" for cls, heading in SECTIONS.items()
               if heading not in text]
    assert missing == []


def test_every_option_is_documented() -> None:
    from server import backups

    text = (ROOT / "docs" / "sql.md").read_text()
    options = (
        set(backups.BACKUP_OPTIONS) | set(backups.RESTORE_OPTIONS) | set(backups.VERIFY_OPTIONS)
    )
    assert sorted(o for o in options if f"`{o}`" not in text) == []


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
    test_cmd = next(b.strip() for b in blocks if "pytest" in b)
    command = test_cmd[test_cmd.index("pip install -e '.[test]'"):]  # after the set-up
    assert "pytest" in command
    assert command in ci.splitlines()


def test_readme_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text()
    for link in re.findall(r"\]\(([^)#]+)\)", readme):
        assert (ROOT / link).exists(), link
