"""Finding the engine's tools: what is missing is named with the Debian package to install."""

from __future__ import annotations

from pathlib import Path

import pytest

from imputehub.engine.tools import check_tools


def test_missing_beagle_jar_names_the_package(tmp_path: Path) -> None:
    check = check_tools(beagle_jar=tmp_path / "empty" / "beagle.jar")

    assert not check.healthy
    assert check.tools is None
    assert check.missing == ("beagle.jar",)
    assert "apt-get install beagle" in check.message
    assert str(tmp_path / "empty" / "beagle.jar") in check.message


def test_every_missing_tool_is_named_once_per_package(tmp_path: Path) -> None:
    check = check_tools(
        beagle_jar=tmp_path / "beagle.jar",
        java=str(tmp_path / "java"),
        bcftools=str(tmp_path / "bcftools"),
        tabix=str(tmp_path / "tabix"),
        bgzip=str(tmp_path / "bgzip"),
    )

    assert not check.healthy
    assert set(check.missing) == {"java", "beagle.jar", "bcftools", "tabix", "bgzip"}
    assert check.message.endswith("apt-get install bcftools beagle default-jre-headless tabix")


def test_tools_given_as_paths_are_found(tmp_path: Path) -> None:
    jar = tmp_path / "beagle.jar"
    jar.write_bytes(b"PK")
    program = tmp_path / "tool"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)

    check = check_tools(
        beagle_jar=jar,
        java=str(program),
        bcftools=str(program),
        tabix=str(program),
        bgzip=str(program),
    )

    assert check.healthy
    assert check.tools is not None
    assert check.tools.beagle_jar == jar
    assert check.tools.bcftools == str(program)


@pytest.mark.parametrize("name", ["java", "bcftools", "tabix", "bgzip"])
def test_a_program_that_is_not_executable_is_missing(tmp_path: Path, name: str) -> None:
    jar = tmp_path / "beagle.jar"
    jar.write_bytes(b"PK")
    plain = tmp_path / name
    plain.write_text("not a program")
    check = check_tools(beagle_jar=jar, **{name: str(plain)})

    assert check.missing == (name,)
