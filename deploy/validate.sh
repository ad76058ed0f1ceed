#!/usr/bin/env bash
# Offline checks of deploy/ (no Docker engine, no cluster, no network needed once the tools are
# installed). Each check runs when its tool is present and is reported as skipped otherwise.
#   pip install yamllint kubernetes-validate compose-spec   # (a venv is fine: VALIDATE_PY=…)
#   apt-get install docker-compose                           # compose v1, for `config`
# Exit status: non-zero if any check that ran failed.
set -uo pipefail
cd "$(dirname "$0")"
py=${VALIDATE_PY:-python3}
bin=$(dirname "$(command -v "$py")")
fail=0
run() { # name, command...
  local name=$1; shift
  if "$@" >/tmp/callcoach-validate.$$ 2>&1; then echo "ok      $name"; else
    echo "FAILED  $name"; sed 's/^/        /' /tmp/callcoach-validate.$$; fail=1; fi
}
skip() { echo "skipped $1 ($2)"; }

env_file=$(mktemp); cp .env.example "$env_file"
compose_v1=$(mktemp --suffix=.yaml)
# compose v1 predates the top-level `name:` key; everything else is validated by its schema.
sed '/^name: /d' compose.yaml >"$compose_v1"

if command -v yamllint >/dev/null || [ -x "$bin/yamllint" ]; then
  yl=$(command -v yamllint || echo "$bin/yamllint")
  run "yamllint compose.yaml k8s/" "$yl" -d '{extends: default, rules: {line-length: {max: 120}, document-start: disable, comments: {min-spaces-from-content: 1}, truthy: {check-keys: false}}}' compose.yaml k8s/
else skip yamllint "pip install yamllint"; fi

if docker compose version >/dev/null 2>&1; then
  run "docker compose config" docker compose -f compose.yaml --env-file "$env_file" config -q
else skip "docker compose config" "no compose v2 plugin"; fi

if command -v docker-compose >/dev/null; then
  run "docker-compose (v1) config" docker-compose -f "$compose_v1" --project-directory . --env-file "$env_file" config -q
  run "compose.yaml refuses to start without secrets" bash -c \
    "! docker-compose -f '$compose_v1' --project-directory . --env-file /dev/null config -q 2>/dev/null"
  if "$py" -c 'import compose_spec' 2>/dev/null; then
    run "compose-spec strict model (interpolated file)" bash -c \
      "{ echo 'name: callcoach'; docker-compose -f '$compose_v1' --project-directory . --env-file '$env_file' config; } \
       | '$py' -c 'import sys, compose_spec; c = compose_spec.PyCompose.from_yaml(sys.stdin.read()); print(c.service_names())'"
  else skip "compose-spec" "pip install compose-spec"; fi
else skip "docker-compose config" "apt-get install docker-compose"; fi

if command -v kubernetes-validate >/dev/null || [ -x "$bin/kubernetes-validate" ]; then
  kv=$(command -v kubernetes-validate || echo "$bin/kubernetes-validate")
  for v in 1.29.0 1.37.0; do
    run "kubernetes-validate --strict k8s/ (Kubernetes $v)" "$kv" --strict --quiet -k "$v" \
      k8s/namespace.yaml k8s/configmap.yaml k8s/secret.yaml k8s/deployment.yaml k8s/service.yaml \
      k8s/ingress.yaml k8s/hpa.yaml k8s/pdb.yaml k8s/prometheus-adapter-rules.yaml
  done
else skip kubernetes-validate "pip install kubernetes-validate"; fi

if command -v kubectl >/dev/null; then
  run "kubectl kustomize k8s/" bash -c "kubectl kustomize k8s >/dev/null"
else skip "kubectl kustomize" "no kubectl"; fi

if command -v systemd-analyze >/dev/null; then
  # verify wants ExecStart's binary to exist: point it at a built one when there is one.
  binary=$(ls ../target/release/callcoach ../target/debug/callcoach 2>/dev/null | head -n1)
  if [ -n "$binary" ]; then
    unit_dir=$(mktemp -d)
    sed "s#/usr/local/bin/callcoach#$(realpath "$binary")#g" callcoach.service >"$unit_dir/callcoach.service"
    run "systemd-analyze verify callcoach.service" bash -c \
      "out=\$(systemd-analyze verify '$unit_dir/callcoach.service' 2>&1); echo \"\$out\"; [ -z \"\$out\" ]"
    run "systemd-analyze security (exposure <= 2.0)" bash -c \
      "systemd-analyze security --offline=true --threshold=20 '$unit_dir/callcoach.service' >/dev/null"
  else skip "systemd-analyze verify" "build callcoach first"; fi
else skip systemd-analyze "no systemd"; fi

rm -f "$env_file" "$compose_v1" /tmp/callcoach-validate.$$
exit $fail
