#!/bin/sh
# Renders /etc/nginx/templates/*.template into /etc/nginx/conf.d/ like the official nginx image
# does: envsubst replaces only ${NAME} for variables defined in the environment, so nginx's own
# $variables survive. Then runs the command (nginx in the foreground by default).
set -eu
defined_envs=$(printf '${%s} ' $(env | cut -d= -f1))
for template in /etc/nginx/templates/*.template; do
    [ -f "$template" ] || continue
    output="/etc/nginx/conf.d/$(basename "$template" .template)"
    echo "docker-entrypoint.sh: rendering $template to $output"
    envsubst "$defined_envs" <"$template" >"$output"
done
exec "$@"
