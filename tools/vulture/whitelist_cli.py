"""vulture's false positives in clients/cli (the `osmcloud` and `osmcloud-admin` commands).

typer registers a command by its decorator (@app.command(), @app.callback(), @x_app.command("name")) and
runs it by the name typed on the command line, so no Python code calls these functions. Each line below
names one (vulture counts a name as used wherever it is read); nothing here is imported at run time."""

from osmcloud_cli import admin, app

# osmcloud (clients/cli/src/osmcloud_cli/app.py; docs/cli.md)
_ = app.main_options  # @app.callback(): the options before the command (--config-dir, --folder)
_ = app.login  # @app.command(): osmcloud login URL EMAIL
_ = app.diff  # @app.command(): osmcloud diff PATH
_ = app.select  # @app.command(): osmcloud select [TYPE on|off]
_ = app.devices_logout  # @devices_app.command("logout"): osmcloud devices logout ID

# osmcloud-admin (clients/cli/src/osmcloud_cli/admin.py; docs/operators.md)
_ = admin.plan  # @app.command(): osmcloud-admin plan WHO --pro|--start|--revoke
_ = admin.quota  # @app.command(): osmcloud-admin quota WHO --bytes --files
_ = admin.export  # @app.command(): osmcloud-admin export WHO -o FILE
_ = admin.dead_letters  # @letters_app.callback(): osmcloud-admin dead-letters (the listing)
_ = admin.replay  # @letters_app.command("replay"): osmcloud-admin dead-letters replay SERVICE ID
_ = admin.discard  # @letters_app.command("discard"): osmcloud-admin dead-letters discard SERVICE ID
_ = admin.reconcile  # @app.command(): osmcloud-admin reconcile
_ = admin.purge  # @app.command(): osmcloud-admin purge
_ = admin.health  # @app.command(): osmcloud-admin health
_ = admin.audit  # @app.command(): osmcloud-admin audit
