// Lint for the extension's TypeScript (npm run lint).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['lib/', 'node_modules/', '../../datahub/labextension/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['scripts/**/*.js'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', process: 'readonly', __dirname: 'readonly' }
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' }
  },
  {
    rules: {
      eqeqeq: 'error',
      curly: ['error', 'multi-line'],
      'prefer-const': 'error',
      '@typescript-eslint/no-explicit-any': 'error'
    }
  }
);
