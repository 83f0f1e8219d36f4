public enum GSASRRasterModule {}
