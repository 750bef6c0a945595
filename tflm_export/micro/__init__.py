"""TFLite Micro's view of an int8 model: the op graph, the flatbuffer reader, the allocator replay."""
