/**
 * `kiln sbom`: the packages inside an image (or a directory), each with the layer and the Dockerfile line
 * that brought it in. Sources are `kiln analyze`'s, and `dir:PATH`; the layers are read one at a time,
 * bottom first, each in one streaming pass. `kiln scan` catalogues through this too.
 */
import { catalogueLayers } from '../analyze/sbom/catalogue.js';
import type { PackageOrigin, Sbom } from '../analyze/sbom/model.js';
import { directoryLayer, tarLayer } from '../analyze/sbom/tree.js';
import { layerOrigins } from '../analyze/history.js';
import { withLayerTar } from '../analyze/layers/walk.js';
import { type AnalyzeOptions, lineAttribution, parseImageSource, readDockerfileOption, withSourceImage } from './analyze.js';
import type { Engine } from './engine.js';

export type SbomOptions = Pick<AnalyzeOptions, 'dockerfile' | 'platform' | 'insecureRegistries'>;

/** The prefix of a directory source. */
const DIR = 'dir:';

/** The SBOM of the image (or directory) a source names. */
export async function sbomOf(engine: Engine, sourceText: string, options: SbomOptions = {}): Promise<Sbom> {
  if (sourceText.startsWith(DIR)) {
    const origin: PackageOrigin = { layerIndex: 0, diffId: '', createdBy: '', file: null, line: null, instruction: null };
    const { distro, packages } = await catalogueLayers([directoryLayer(sourceText.slice(DIR.length))], [origin]);
    return { source: sourceText, imageId: '', names: [], distro, packages };
  }
  const source = parseImageSource(sourceText, 'kiln sbom', `, ${DIR}PATH`);
  const dockerfileText = await readDockerfileOption(options.dockerfile);
  return engine.store.withLease((lease) =>
    withSourceImage(engine, source, options, lease, async ({ image, names }) => {
      const { lines } = await lineAttribution(engine, image, options, dockerfileText);
      const origins = layerOrigins(image.config.history, image.layers.length).map((origin, index): PackageOrigin => {
        const line = origin.historyIndex === undefined ? undefined : lines.get(origin.historyIndex);
        return { layerIndex: index, diffId: image.layers[index]?.diffId ?? '', createdBy: origin.createdBy, file: line?.file ?? null, line: line?.line ?? null, instruction: line?.instruction ?? null };
      });
      const walks = image.layers.map((layer, index) => (visit: Parameters<ReturnType<typeof tarLayer>>[0]) => withLayerTar(layer, (tar, file) => tarLayer(tar, `${sourceText}: layer ${index + 1} of ${image.layers.length}`, file)(visit)));
      const { distro, packages } = await catalogueLayers(walks, origins);
      return { source: sourceText, imageId: image.id, names, distro, packages };
    }),
  );
}
