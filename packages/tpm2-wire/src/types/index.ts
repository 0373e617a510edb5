export * from './codec.js';
export * from './constants.js';
export * from './structures.js';
