#!/usr/bin/env bash
# The release: the controller image for linux/amd64 and linux/arm64, pushed and named by digest,
# signed, with its SBOM attested; the controller chart pushed as an OCI artifact; the npm package
# published with provenance. One version for all three: package.json's. `.gitlab-ci.yml`'s release
# job runs `scripts/release.sh all "$CI_COMMIT_TAG" ...`; test/e2e/release.test.ts runs the same
# commands against a Distribution on loopback.
#
#   scripts/release.sh version [TAG]            print the version; with TAG, fail unless TAG is v<version>
#   scripts/release.sh image REPO               build (or take RELEASE_IMAGE_ARCHIVE), push to REPO:<version>,
#                                               write $RELEASE_DIR/image.ref (REPO:<version>@sha256:...)
#   scripts/release.sh sign REF                 sign REF (by digest) and each platform's image with cosign
#   scripts/release.sh sbom REF                 write $RELEASE_DIR/sbom.cdx.json from the archive, attest it to REF
#   scripts/release.sh verify REF               cosign verify (signature) and verify-attestation (SBOM) of REF
#   scripts/release.sh chart OCI_REPO REF       the controller chart for image REF, helm package, helm push
#                                               to oci://OCI_REPO; writes $RELEASE_DIR/chart.ref
#   scripts/release.sh pack                     npm pack into $RELEASE_DIR, its version checked
#   scripts/release.sh npm                      pack, then npm publish of that tarball with --provenance
#   scripts/release.sh all TAG IMAGE_REPO CHART_OCI_REPO
#                                               version TAG, image, sign, sbom, verify, chart, npm
#
# Environment:
#   RELEASE_DIR             what the steps write (default build/release)
#   RELEASE_PLATFORMS       the image's platforms (default linux/amd64,linux/arm64)
#   RELEASE_IMAGE_ARCHIVE   push this OCI archive instead of building one (its tag must be the version)
#   COSIGN_KEY              the signing key (a path, or cosign's env://VAR); COSIGN_PASSWORD its passphrase.
#                           Unset: keyless signing with the CI's OIDC token (SIGSTORE_ID_TOKEN), Fulcio and Rekor
#   COSIGN_PUBLIC_KEY       the key `verify` checks against (default: COSIGN_KEY's public half); keyless:
#                           RELEASE_CERT_IDENTITY and RELEASE_CERT_ISSUER, the signer cosign must see
#   RELEASE_TLOG=0          sign and verify without the Rekor transparency log (the tests: nothing leaves the machine)
#   RELEASE_PLAIN_HTTP=1    the registry speaks plain HTTP (the tests' Distribution on 127.0.0.1)
#   RELEASE_NPM_DRY_RUN=1   `npm publish --dry-run` (no token, no upload)
#   COSIGN, HELM, SKOPEO    the binaries (default: cosign, helm, skopeo on PATH)
#   RELEASE_CHART_SCRIPT    writes the chart: called as `$RELEASE_CHART_SCRIPT <out-dir> <version> <image-ref>`;
#                           default: charts/mirror-synth with its image set to <REF>
# Registry credentials are the tools' own: `skopeo login`, `cosign login`, `helm registry login`
# (the CI job logs all three in with `scripts/release.sh login`).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
dir=${RELEASE_DIR:-build/release}
mkdir -p "$dir"
cosign=${COSIGN:-cosign} helm=${HELM:-helm} skopeo=${SKOPEO:-skopeo}
version=$(node -p 'require("./package.json").version')

die() {
  echo "release: $*" >&2
  exit 1
}
say() { echo "== release: $*" >&2; }

# Options each tool needs for a plain-HTTP registry and for signing without Rekor.
tls_skopeo=() http_cosign=() http_helm=() tlog_sign=() tlog_verify=()
if [[ ${RELEASE_PLAIN_HTTP:-} == 1 ]]; then
  tls_skopeo=(--dest-tls-verify=false) http_cosign=(--allow-http-registry --allow-insecure-registry) http_helm=(--plain-http)
fi
if [[ ${RELEASE_TLOG:-1} == 0 ]]; then
  tlog_sign=(--tlog-upload=false) tlog_verify=(--insecure-ignore-tlog=true)
fi

# The version, checked against a tag when one is given: the tag names what is released.
cmd_version() {
  local tag=${1:-}
  if [[ -n $tag && $tag == "$version" ]]; then
    die "the tag '$tag' has no leading v: release tags are v<version>, here v$version"
  fi
  if [[ -n $tag && $tag != "v$version" ]]; then
    die "the tag '$tag' is not v$version (package.json's version): release ${tag#v} by setting it in package.json (npm version ${tag#v} --no-git-tag-version), committing, and tagging that commit; or tag v$version"
  fi
  echo "$version"
}

# REPO without a tag or digest: host[:port]/path.
check_repo() {
  [[ $1 =~ ^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+$ ]] || die "$2 must be a repository, host[:port]/path without a tag or digest; got '$1'"
}
# REF by digest: repo[:tag]@sha256:<64 hex>.
check_ref() {
  [[ $1 =~ @sha256:[0-9a-f]{64}$ ]] || die "$2 must name the image by digest (...@sha256:<64 hex digits>); got '$1'"
}

cmd_image() {
  local repo=${1:?usage: release.sh image REPO} archive=${RELEASE_IMAGE_ARCHIVE:-}
  check_repo "$repo" REPO
  if [[ -z $archive ]]; then
    archive=$dir/mirror-synth-controller.oci.tar
    say "build the image for ${RELEASE_PLATFORMS:-linux/amd64,linux/arm64} into $archive"
    IMAGE_TAG=$version IMAGE_PLATFORMS=${RELEASE_PLATFORMS:-linux/amd64,linux/arm64} IMAGE_OUT=$archive \
      bash scripts/build-image.sh >&2
  fi
  local tag
  tag=$(tar -xOf "$archive" ./index.json | node -p 'JSON.parse(require("fs").readFileSync(0, "utf8")).manifests.map((m) => m.annotations?.["org.opencontainers.image.ref.name"]).join(" ")')
  [[ $tag == "$version" ]] || die "$archive is tagged '$tag', not the version $version"
  say "push $archive to $repo:$version"
  "$skopeo" copy --all --preserve-digests "${tls_skopeo[@]}" --digestfile "$dir/image.digest" \
    "oci-archive:$archive" "docker://$repo:$version" >&2
  echo "$archive" >"$dir/image.archive"
  echo "$repo:$version@$(cat "$dir/image.digest")" | tee "$dir/image.ref"
}

# The key options: a key (tests, or a key kept in a CI variable), else none: keyless, where cosign
# reads the CI's OIDC token from SIGSTORE_ID_TOKEN itself (never on a command line).
sign_key() {
  if [[ -n ${COSIGN_KEY:-} ]]; then
    echo "--key=$COSIGN_KEY"
  elif [[ -z ${SIGSTORE_ID_TOKEN:-} ]]; then
    die "no signing key: set COSIGN_KEY (and COSIGN_PASSWORD), or run where the CI provides SIGSTORE_ID_TOKEN for keyless signing"
  fi
}

cmd_sign() {
  local ref=${1:?usage: release.sh sign REF} key
  check_ref "$ref" REF
  key=$(sign_key)
  say "sign $ref and its platform images"
  "$cosign" sign --yes --recursive ${key:+"$key"} "${tlog_sign[@]}" "${http_cosign[@]}" "$ref" >&2
}

cmd_sbom() {
  local ref=${1:?usage: release.sh sbom REF} archive key
  check_ref "$ref" REF
  key=$(sign_key)
  archive=${RELEASE_IMAGE_ARCHIVE:-$(cat "$dir/image.archive" 2>/dev/null || true)}
  [[ -f $archive ]] || die "no image archive to describe: run 'release.sh image' first or set RELEASE_IMAGE_ARCHIVE"
  node scripts/release/sbom.mjs "$archive" "$dir/sbom.cdx.json" >&2
  say "attest the SBOM to $ref"
  "$cosign" attest --yes ${key:+"$key"} --type cyclonedx --predicate "$dir/sbom.cdx.json" \
    "${tlog_sign[@]}" "${http_cosign[@]}" "$ref" >&2
}

verify_key() {
  if [[ -n ${COSIGN_PUBLIC_KEY:-} ]]; then
    echo "--key=$COSIGN_PUBLIC_KEY"
  elif [[ -n ${COSIGN_KEY:-} ]]; then
    "$cosign" public-key --key "$COSIGN_KEY" >"$dir/cosign.pub"
    echo "--key=$dir/cosign.pub"
  else
    [[ -n ${RELEASE_CERT_IDENTITY:-} && -n ${RELEASE_CERT_ISSUER:-} ]] ||
      die "keyless verify needs RELEASE_CERT_IDENTITY and RELEASE_CERT_ISSUER (or COSIGN_PUBLIC_KEY)"
    echo "--certificate-identity=$RELEASE_CERT_IDENTITY"
    echo "--certificate-oidc-issuer=$RELEASE_CERT_ISSUER"
  fi
}

cmd_verify() {
  local ref=${1:?usage: release.sh verify REF} key
  check_ref "$ref" REF
  mapfile -t key < <(verify_key)
  say "verify the signature of $ref"
  "$cosign" verify "${key[@]}" "${tlog_verify[@]}" "${http_cosign[@]}" "$ref" >"$dir/verify.json"
  say "verify the SBOM attestation of $ref"
  "$cosign" verify-attestation "${key[@]}" --type cyclonedx "${tlog_verify[@]}" "${http_cosign[@]}" "$ref" \
    >"$dir/verify-attestation.json"
}

cmd_chart() {
  local repo=${1:?usage: release.sh chart OCI_REPO REF} ref=${2:?usage: release.sh chart OCI_REPO REF} work name
  check_repo "$repo" OCI_REPO
  check_ref "$ref" REF
  work=$dir/chart
  rm -rf "$work" && mkdir -p "$work"
  if [[ -n ${RELEASE_CHART_SCRIPT:-} ]]; then
    "$RELEASE_CHART_SCRIPT" "$work/mirror-synth" "$version" "$ref" >&2
  else
    # The chart in charts/mirror-synth (npm run chart), its image defaulting to the one released:
    # <repository>@<digest>, the tag kept as the appVersion.
    local img_digest=${ref##*@} tagged=${ref%@*}
    cp -R "$root/charts/mirror-synth" "$work/mirror-synth"
    sed -i -e "0,/^  repository: \"\"\$/s||  repository: \"${tagged%:*}\"|" \
      -e "0,/^  digest: \"\"\$/s||  digest: \"$img_digest\"|" "$work/mirror-synth/values.yaml"
    grep -q "^  digest: \"$img_digest\"\$" "$work/mirror-synth/values.yaml" || die "could not set the chart's image digest"
  fi
  name=$(sed -n 's/^name: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$work/mirror-synth/Chart.yaml")
  local chart_version
  chart_version=$(sed -n 's/^version: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$work/mirror-synth/Chart.yaml")
  [[ $chart_version == "$version" ]] || die "the chart's version is '$chart_version', not $version"
  "$helm" package "$work/mirror-synth" --destination "$work" >&2
  say "push $work/$name-$version.tgz to oci://$repo"
  "$helm" push "${http_helm[@]}" "$work/$name-$version.tgz" "oci://$repo" 2>&1 | tee "$work/push.log" >&2
  local digest
  digest=$(sed -n 's/^Digest: //p' "$work/push.log")
  [[ -n $digest ]] || die "helm push printed no digest"
  echo "oci://$repo/$name:$version@$digest" | tee "$dir/chart.ref"
}

cmd_pack() {
  rm -f "$dir"/mirror-synth-*.tgz
  # lib/ as `npm ci` or `npm run build` compiled it: `prepare` would delete and rewrite it under
  # whatever else is using it (tests), so it is not run again here.
  [[ -f lib/index.js && -f lib/cli/main.js ]] || die "lib/ is not built: run npm ci (or npm run build) first"
  local file
  file=$(npm pack --ignore-scripts --pack-destination "$dir" --json | node -p 'JSON.parse(require("fs").readFileSync(0, "utf8"))[0].filename')
  local packed
  packed=$(tar -xOzf "$dir/$file" package/package.json | node -p 'JSON.parse(require("fs").readFileSync(0, "utf8")).version')
  [[ $packed == "$version" ]] || die "$file holds version $packed, not $version"
  echo "$dir/$file" | tee "$dir/npm.ref"
}

cmd_npm() {
  local tarball
  tarball=$(cmd_pack)
  if [[ ${RELEASE_NPM_DRY_RUN:-} == 1 ]]; then
    say "npm publish $tarball --dry-run"
    npm publish "$tarball" --dry-run --access public >&2
  else
    # Provenance: npm signs a statement that this CI job built the tarball, with the job's OIDC
    # token (GitLab: the SIGSTORE_ID_TOKEN id_token), and npm shows it on the package's page.
    say "npm publish $tarball --provenance"
    npm publish "$tarball" --provenance --access public >&2
  fi
}

# Log skopeo, cosign and helm in to a registry: user and host as arguments, the password on stdin.
cmd_login() {
  local host=${1:?usage: release.sh login HOST USER  (password on stdin)} user=${2:?usage: release.sh login HOST USER}
  local password
  password=$(cat)
  printf '%s' "$password" | "$skopeo" login --username "$user" --password-stdin "$host" >&2
  printf '%s' "$password" | "$cosign" login --username "$user" --password-stdin "$host" >&2
  printf '%s' "$password" | "$helm" registry login --username "$user" --password-stdin "$host" >&2
}

cmd_all() {
  local tag=${1:?usage: release.sh all TAG IMAGE_REPO CHART_OCI_REPO} repo=${2:?usage: release.sh all TAG IMAGE_REPO CHART_OCI_REPO}
  local chart_repo=${3:?usage: release.sh all TAG IMAGE_REPO CHART_OCI_REPO} ref
  cmd_version "$tag" >/dev/null
  check_repo "$repo" IMAGE_REPO
  check_repo "$chart_repo" CHART_OCI_REPO
  ref=$(cmd_image "$repo")
  cmd_sign "$ref"
  cmd_sbom "$ref"
  cmd_verify "$ref"
  cmd_chart "$chart_repo" "$ref" >/dev/null
  cmd_npm
  say "released $version: image $ref, chart $(cat "$dir/chart.ref"), npm $(basename "$(cat "$dir/npm.ref")")"
}

command=${1:-}
shift || true
case $command in
  version | image | sign | sbom | verify | chart | pack | npm | login | all) "cmd_$command" "$@" ;;
  *)
    sed -n '/^#   scripts/,/^#$/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
