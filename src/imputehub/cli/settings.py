"""Settings for a command: the environment (and `.env`), overridden by command-line options."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imputehub.cli.errors import CliError

if TYPE_CHECKING:
    from imputehub.config import Settings


def load_settings(**overrides: Any) -> Settings:
    """`Settings.from_environ()` with the options the user actually gave (None = not given).

    pydantic-settings is imported here, not with the module: commands that never read the
    settings (`--help`, `files check`) should not pay for it.
    """
    from pydantic import ValidationError

    from imputehub.config import Settings

    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings.from_environ(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"IMPUTEHUB_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise CliError(f"invalid configuration: {problems}") from exc
