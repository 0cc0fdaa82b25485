/** A node of the path trees the analyses stack layers into: children by name, absent until it has one. */
export interface TreeNode<N> {
  children: Map<string, N> | undefined;
}

/** The node at `path` (slash-separated, no leading slash) with its parent and name; undefined when its parent is not there. */
export function lookupPath<N extends TreeNode<N>>(root: N, path: string): { parent: N; name: string; node: N | undefined } | undefined {
  let parent = root;
  const names = path.split('/');
  for (let i = 0; i < names.length - 1; i++) {
    const next = parent.children?.get(names[i] as string);
    if (!next) return undefined;
    parent = next;
  }
  const name = names[names.length - 1] as string;
  return { parent, name, node: parent.children?.get(name) };
}
