public enum GSASRImageModule {}
