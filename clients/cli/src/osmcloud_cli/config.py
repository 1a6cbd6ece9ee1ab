"""Where the CLI keeps its login: `<config dir>/credentials.json`, readable by its owner only.

The config dir is `--config-dir`, else $OSMCLOUD_CONFIG_DIR, else $XDG_CONFIG_HOME/osmcloud,
else ~/.config/osmcloud. The file holds the server URL, the e-mail, the device token and the
synced folder. It is written through a temporary file created with mode 0600 in a 0700
directory, and a file that others can read is refused, as ssh refuses a readable key."""

import json
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import CliError, NotLoggedIn

FILE_NAME = "credentials.json"


def default_config_dir() -> Path:
    if os.environ.get("OSMCLOUD_CONFIG_DIR"):
        return Path(os.environ["OSMCLOUD_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "osmcloud"


@dataclass
class Credentials:
    server: str
    email: str
    token: str
    user_id: str
    device_id: str
    folder: str


def save(config_dir: Path, creds: Credentials) -> Path:
    config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(config_dir, 0o700)
    target = config_dir / FILE_NAME
    tmp = config_dir / f".{FILE_NAME}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(creds), out, indent=2)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    return target


def load(config_dir: Path) -> Credentials:
    path = config_dir / FILE_NAME
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise NotLoggedIn(f"not logged in (no {path}); run: osmcloud login URL EMAIL") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CliError(f"{path} is readable by other users (mode {stat.S_IMODE(mode):04o}); it holds a device "
                       f"token: run 'chmod 600 {path}' (or log in again)", code="insecure_credentials")
    try:
        return Credentials(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise NotLoggedIn(f"{path} is damaged ({exc}); run: osmcloud login URL EMAIL") from exc


def remove(config_dir: Path) -> None:
    (config_dir / FILE_NAME).unlink(missing_ok=True)
