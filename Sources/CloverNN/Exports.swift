// The safetensors format lives in CloverData (a file format needs no tensors, and the
// OSCAR corpus reader stores region features in it); state dicts are written in it, so
// CloverNN's users get it with `import CloverNN` as before.
@_exported import struct CloverData.SafeTensors
@_exported import struct CloverData.SafeTensorsError
// What SafeTensors.write(path:) throws.
@_exported import struct CloverFiles.FileWriteError
