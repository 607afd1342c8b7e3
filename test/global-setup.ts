// Runs once before the whole suite. Test fixtures (certificates named after their defects)
// are generated fresh by the script kept in the repo, never committed as blobs.
export default async function setup(): Promise<void> {
  const { generateFixtures } = await import('./fixtures/generate.ts');
  await generateFixtures();
}
