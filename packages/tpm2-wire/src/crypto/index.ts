export * from './hash.js';
export * from './names.js';
export * from './templates.js';
