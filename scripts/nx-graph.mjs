#!/usr/bin/env node
// Refreshes Nx's cached project graph (.nx/workspace-data). The ESLint rules
// @nx/enforce-module-boundaries and @nx/dependency-checks only READ that cache: run from the
// ESLint CLI without it they silently skip every check, and with a stale one they check the
// imports of an older tree. `npm run lint` therefore runs this first.
import { createProjectGraphAsync } from '@nx/devkit';

process.env.NX_DAEMON ??= 'false';
process.env.NX_NO_CLOUD ??= 'true';
const graph = await createProjectGraphAsync({ exitOnError: true });
const projects = Object.keys(graph.nodes).sort();
console.log(`nx project graph: ${projects.length} projects (${projects.join(', ')})`);
