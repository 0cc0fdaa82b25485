import { BUILD_CASES } from '../helpers/build-cases.js';
import { differentialSuite, differentialUnavailable } from '../helpers/differential.js';

const skip = await differentialUnavailable();
differentialSuite("kiln build gives BuildKit's result", BUILD_CASES.filter((c) => c.buildkit), { concurrency: 3, skip });
