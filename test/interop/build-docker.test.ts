import { BUILD_CASES, writeContext } from '../helpers/build-cases.js';
import { differentialSuite, differentialUnavailable } from '../helpers/differential.js';

const skip = await differentialUnavailable();
differentialSuite("kiln build gives BuildKit's result", BUILD_CASES.filter((c) => c.buildkit), {
  concurrency: 4,
  skip,
  // A base with ONBUILD triggers, made by each builder, for the case that builds on it.
  prepare: async (builders) => {
    const base = await writeContext({ name: 'onbuild-base', buildkit: true, dockerfile: 'FROM busybox\nONBUILD COPY a.txt /onbuild/\nONBUILD RUN echo triggered > /onbuild/ran\nONBUILD ENV FROM_TRIGGER=1\n' });
    await Promise.all([builders.kiln(['-t', 'onbuild-base:1', base]), builders.buildkit(['-t', 'onbuild-base:1', base])]);
  },
});
