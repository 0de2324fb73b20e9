// placeholder until the package's issue lands
export const packageName = '@blora/quant';
