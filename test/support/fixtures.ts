/** A RegistryMirror file's text, with `spec` written in YAML flow style (e.g. "{upstreamUrl: quay.io}"). */
export function mirrorYaml(name: string, spec: string): string {
  return `apiVersion: k8s.osp.tech/v1\nkind: RegistryMirror\nmetadata: {name: ${name}}\nspec: ${spec}\n`;
}
