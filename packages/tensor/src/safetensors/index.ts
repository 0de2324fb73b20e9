// Reading and writing the safetensors format.
export {
  SAFETENSORS_DTYPES, SAFETENSORS_ITEM_SIZES, METADATA_KEY, MAX_HEADER_BYTES,
  type SafetensorsDType, type SafetensorsEntry, type RawTensor,
} from './format.js';
export { SafetensorsReader, type ReadTensorOptions } from './reader.js';
export { serializeSafetensors, writeSafetensors, type SafetensorsInput } from './writer.js';
